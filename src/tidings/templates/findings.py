"""What a review rule reports, and the helpers every rule uses. PURE.

Outcomes:

- REFUSE        the request itself fails with a Graph error code (Meta answers these at once:
                2388040 lengths, 2388047 header/body format, 2388073 footer format, 2388293 too
                many parameters, 2388299 leading/trailing parameter, 100 invalid parameter)
- REJECT        the template is stored with status REJECTED and Meta's rejection reason
- RECATEGORIZE  the template is approved in another category (Meta's behaviour since
                April 2025 for UTILITY templates that read as MARKETING)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tidings.templates.definition import AUTHENTICATION, TemplateDraft, TextPart

REFUSE = "REFUSE"
REJECT = "REJECT"
RECATEGORIZE = "RECATEGORIZE"

BODY_MAX = 1024
HEADER_MAX = 60
FOOTER_MAX = 60
BUTTON_TEXT_MAX = 25
URL_MAX = 2000
PHONE_MAX = 20
COPY_CODE_MAX = 15
AUTH_PARAMETER_MAX = 15
BUTTONS_MAX = 10
PER_TYPE_MAX = {"QUICK_REPLY": 10, "URL": 2, "PHONE_NUMBER": 1, "COPY_CODE": 1, "OTP": 1}
FIXED_WORDS_PER_PARAMETER = 2  # fewer words of fixed text than this per parameter: 2388293

# Meta's Graph codes for template problems (cloud-api.md §7).
CHARACTER_LIMIT = 2388040
HEADER_OR_BODY_FORMAT = 2388047
FOOTER_FORMAT = 2388073
TOO_MANY_PARAMETERS = 2388293
LEADING_OR_TRAILING_PARAMETER = 2388299
INVALID_PARAMETER = 100


@dataclass(frozen=True)
class Finding:
    rule: str
    message: str
    outcome: str  # REFUSE | REJECT | RECATEGORIZE
    graph_code: int | None = None  # REFUSE: the code the request fails with
    reason: str | None = None  # REJECT: Meta's rejection reason

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"rule": self.rule, "outcome": self.outcome}
        out["message"] = self.message
        if self.graph_code is not None:
            out["code"] = self.graph_code
        if self.reason is not None:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class ReviewContext:
    """Facts from outside the draft the rules need (gathered by the service)."""

    # (body text, footer text) of the business's other live templates: duplicates are refused.
    existing_texts: frozenset[tuple[str, str]] = frozenset()


Rule = Callable[[TemplateDraft, ReviewContext], Iterator[Finding]]


def registrar(registry: dict[str, Rule]) -> Callable[[str], Callable[[Rule], Rule]]:
    """A `@rule(name)` decorator that files each rule in `registry`."""

    def rule(name: str) -> Callable[[Rule], Rule]:
        def register(check: Rule) -> Rule:
            registry[name] = check
            return check

        return register

    return rule


def refuse(name: str, code: int, message: str) -> Finding:
    return Finding(name, message, REFUSE, graph_code=code)


def reject(name: str, reason: str, message: str) -> Finding:
    return Finding(name, message, REJECT, reason=reason)


def own_texts(draft: TemplateDraft) -> Iterator[tuple[str, TextPart]]:
    """The texts the business wrote (an authentication body is Meta's preset, not theirs)."""
    if draft.header is not None and draft.header.text is not None:
        yield "header", draft.header.text
    if draft.category != AUTHENTICATION:
        yield "body", draft.body
