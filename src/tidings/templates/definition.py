"""A message template as submitted, in frozen shapes the review rules and the classifier read.

PURE: no I/O. `schemas.py` turns a Cloud API request body into a `TemplateDraft`; the review
(`review.py`) and the category classifier (`classifier.py`) only ever see these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MARKETING = "MARKETING"
UTILITY = "UTILITY"
AUTHENTICATION = "AUTHENTICATION"
CATEGORIES = (MARKETING, UTILITY, AUTHENTICATION)

POSITIONAL = "POSITIONAL"
NAMED = "NAMED"

# Meta's template statuses (cloud-api.md §5). Only some are reachable here yet; the rest are
# accepted by the list filter and kept for quality/pausing and archival.
PENDING = "PENDING"
APPROVED = "APPROVED"
REJECTED = "REJECTED"
PAUSED = "PAUSED"
DISABLED = "DISABLED"
IN_APPEAL = "IN_APPEAL"
LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
PENDING_DELETION = "PENDING_DELETION"
DELETED = "DELETED"
ARCHIVED = "ARCHIVED"
STATUSES = (
    APPROVED,
    PENDING,
    REJECTED,
    PAUSED,
    DISABLED,
    IN_APPEAL,
    LIMIT_EXCEEDED,
    PENDING_DELETION,
    DELETED,
    ARCHIVED,
)
QUALITY_SCORES = ("GREEN", "YELLOW", "RED", "UNKNOWN")

MEDIA_HEADER_FORMATS = ("IMAGE", "VIDEO", "GIF", "DOCUMENT")
HEADER_FORMATS = ("TEXT", *MEDIA_HEADER_FORMATS, "LOCATION")
# Button types stored and shown; the first five have specific rules, the rest only a text limit.
BUTTON_TYPES = (
    "QUICK_REPLY",
    "URL",
    "PHONE_NUMBER",
    "COPY_CODE",
    "OTP",
    "FLOW",
    "CATALOG",
    "MPM",
    "SPM",
    "VOICE_CALL",
    "ORDER_DETAILS",
)
OTP_TYPES = ("COPY_CODE", "ONE_TAP", "ZERO_TAP")

# A well-formed placeholder: positional {{1}} or named {{first_name}}.
PLACEHOLDER = re.compile(r"\{\{([1-9][0-9]*|[a-z_][a-z0-9_]*)\}\}")


@dataclass(frozen=True)
class TextPart:
    """A header or body text with the example values given for its placeholders.

    `examples` pairs a placeholder name ("1", "2" for positional) with its example value, in
    the order they were given; `examples_given` counts the values even when names are unknown.
    """

    text: str
    examples: tuple[tuple[str, str], ...] = ()
    examples_given: int = 0

    @property
    def placeholders(self) -> tuple[str, ...]:
        return tuple(match.group(1) for match in PLACEHOLDER.finditer(self.text))


@dataclass(frozen=True)
class Header:
    format: str  # one of HEADER_FORMATS
    text: TextPart | None = None
    media_handle: str | None = None


@dataclass(frozen=True)
class Button:
    type: str
    text: str = ""
    url: str | None = None
    url_example: str | None = None
    phone_number: str | None = None
    example: str | None = None  # COPY_CODE's example code
    otp_type: str | None = None


@dataclass(frozen=True)
class TemplateDraft:
    """What a business submits (create or edit), already shaped but not yet judged."""

    name: str
    language: str
    category: str
    parameter_format: str
    body: TextPart
    header: Header | None = None
    footer: str | None = None
    buttons: tuple[Button, ...] = ()
    # Authentication templates have preset texts (Meta fills them in); these are their options.
    add_security_recommendation: bool = False
    code_expiration_minutes: int | None = None

    def texts(self) -> tuple[str, ...]:
        """Every piece of text a customer would read, for the content checks."""
        parts = [self.body.text]
        if self.header is not None and self.header.text is not None:
            parts.insert(0, self.header.text.text)
        if self.footer:
            parts.append(self.footer)
        parts.extend(button.text for button in self.buttons if button.text)
        return tuple(parts)


def authentication_body(add_security_recommendation: bool) -> str:
    """The body Meta shows for an authentication template (its text is not the business's)."""
    text = "{{1}} is your verification code."
    if add_security_recommendation:
        text += " For your security, do not share this code."
    return text


def authentication_footer(minutes: int | None) -> str | None:
    return f"This code expires in {minutes} minutes." if minutes else None


# Meta's template languages (its "supported languages" page): one template per language.
LANGUAGES = frozenset(
    """
    af sq ar ar_EG ar_AE ar_LB ar_MA ar_QA ar_SA az be_BY bn bn_IN bg ca zh_CN zh_HK zh_TW hr cs
    da prs_AF nl nl_BE en en_GB en_US en_AE en_AU en_CA en_GH en_IE en_IN en_JM en_MY en_NZ
    en_QA en_SG en_UG en_ZA et fil fi fr fr_BE fr_CA fr_CH fr_CI fr_MA ka de de_AT de_CH el gu
    ha he hi hu id ga it ja kn kk rw_RW ko ky_KG lo lv lt mk ms ml mr nb ps_AF fa pl pt_BR pt_PT
    pa ro ru sr si_LK sk sl es es_AR es_CL es_CO es_CR es_DO es_EC es_HN es_MX es_PA es_PE es_ES
    es_UY es_VE sw sv ta te th tr uk ur uz vi zu
    """.split()  # noqa: SIM905 - a word list reads best as words
)
