"""Review rules on buttons, links, per-category shape and content policy. PURE."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

from tidings.templates.definition import (
    AUTHENTICATION,
    MEDIA_HEADER_FORMATS,
    OTP_TYPES,
    PLACEHOLDER,
    TemplateDraft,
)
from tidings.templates.findings import (
    AUTH_PARAMETER_MAX,
    BUTTONS_MAX,
    COPY_CODE_MAX,
    INVALID_PARAMETER,
    PER_TYPE_MAX,
    PHONE_MAX,
    URL_MAX,
    Finding,
    ReviewContext,
    Rule,
    refuse,
    registrar,
    reject,
)

SHAPE_RULES: dict[str, Rule] = {}
rule = registrar(SHAPE_RULES)


# -- buttons and links ----------------------------------------------------------------------------


@rule("button_counts")
def check_button_counts(draft: TemplateDraft, _: ReviewContext) -> Iterator[Finding]:
    if len(draft.buttons) > BUTTONS_MAX:
        yield refuse(
            "button_counts",
            INVALID_PARAMETER,
            f"A template can have at most {BUTTONS_MAX} buttons; this one has"
            f" {len(draft.buttons)}.",
        )
    counts = Counter(b.type for b in draft.buttons)
    for kind, limit in PER_TYPE_MAX.items():
        if counts[kind] > limit:
            yield refuse(
                "button_counts",
                INVALID_PARAMETER,
                f"At most {limit} {kind} button(s) are allowed; found {counts[kind]}.",
            )


@rule("quick_reply_grouping")
def check_grouping(draft: TemplateDraft, _: ReviewContext) -> Iterator[Finding]:
    kinds = ["QR" if b.type == "QUICK_REPLY" else "OTHER" for b in draft.buttons]
    groups = [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]
    if groups.count("QR") > 1 or groups.count("OTHER") > 1:
        yield refuse(
            "quick_reply_grouping",
            INVALID_PARAMETER,
            "Quick reply buttons must be grouped together, before or after the other buttons"
            " (quick reply, URL, quick reply is not allowed).",
        )


# Link shorteners hide where a link goes.
_SHORTENERS = frozenset(
    {"bit.ly", "tinyurl.com", "goo.gl", "t.co", "ow.ly", "is.gd", "buff.ly", "cutt.ly"}
    | {"rebrand.ly", "shorturl.at", "tiny.cc", "rb.gy", "s.id"}
)
_URL_IN_TEXT = re.compile(r"(?:https?://)?((?:[a-z0-9-]+\.)+[a-z]{2,})(?:/\S*)?", re.I)


@rule("url_buttons")
def check_url_buttons(draft: TemplateDraft, _: ReviewContext) -> Iterator[Finding]:
    for button in draft.buttons:
        if button.type != "URL":
            continue
        url = button.url or ""
        problem = None
        if not re.match(r"https?://[^\s/{}]+", url):
            problem = "must be an absolute http(s) address"
        elif len(url) > URL_MAX:
            problem = f"must be at most {URL_MAX} characters"
        elif PLACEHOLDER.sub("", url).count("{") or len(PLACEHOLDER.findall(url)) > 1:
            problem = "can have one parameter only, written {{1}}"
        elif PLACEHOLDER.search(url) and not re.search(r"\{\{1\}\}$", url):
            problem = "must have its parameter {{1}} at the very end (a dynamic suffix)"
        elif PLACEHOLDER.search(url):
            prefix = url[: url.index("{{")]
            if not button.url_example:
                problem = "has a dynamic suffix and needs an example of the full address"
            elif not button.url_example.startswith(prefix):
                problem = f"example must start with '{prefix}'"
        if problem:
            yield refuse(
                "url_buttons", INVALID_PARAMETER, f"The URL of button '{button.text}' {problem}."
            )


@rule("link_shorteners")
def check_shorteners(draft: TemplateDraft, _: ReviewContext) -> Iterator[Finding]:
    urls = [b.url or "" for b in draft.buttons if b.type == "URL"] + list(draft.texts())
    for text in urls:
        for match in _URL_IN_TEXT.finditer(text):
            if match.group(1).lower() in _SHORTENERS:
                yield reject(
                    "link_shorteners",
                    "INVALID_FORMAT",
                    f"Link shorteners such as {match.group(1)} hide where a link goes: use the"
                    " full address of your own domain.",
                )
                return


@rule("phone_number_buttons")
def check_phone_buttons(draft: TemplateDraft, _: ReviewContext) -> Iterator[Finding]:
    for button in draft.buttons:
        if button.type == "PHONE_NUMBER" and not re.fullmatch(
            rf"\+?[0-9]{{6,{PHONE_MAX}}}", button.phone_number or ""
        ):
            yield refuse(
                "phone_number_buttons",
                INVALID_PARAMETER,
                f"Button '{button.text}' needs a phone number of digits in international form"
                f" (at most {PHONE_MAX}).",
            )


@rule("copy_code_buttons")
def check_copy_code(draft: TemplateDraft, _: ReviewContext) -> Iterator[Finding]:
    for button in draft.buttons:
        if button.type == "COPY_CODE" and not re.fullmatch(
            rf"[A-Za-z0-9]{{1,{COPY_CODE_MAX}}}", button.example or ""
        ):
            yield refuse(
                "copy_code_buttons",
                INVALID_PARAMETER,
                f"A copy-code button needs an example code of letters and digits, at most"
                f" {COPY_CODE_MAX} characters.",
            )


# -- shape per category ---------------------------------------------------------------------------


@rule("media_header_example")
def check_media_header(draft: TemplateDraft, _: ReviewContext) -> Iterator[Finding]:
    header = draft.header
    if header is not None and header.format in MEDIA_HEADER_FORMATS and not header.media_handle:
        yield refuse(
            "media_header_example",
            INVALID_PARAMETER,
            f"A {header.format} header needs an example: example.header_handle with the handle"
            " of an uploaded sample.",
        )


@rule("authentication_shape")
def check_authentication(draft: TemplateDraft, _: ReviewContext) -> Iterator[Finding]:
    otp = [b for b in draft.buttons if b.type == "OTP"]
    if draft.category != AUTHENTICATION:
        if otp:
            yield refuse(
                "authentication_shape",
                INVALID_PARAMETER,
                "OTP buttons are only allowed in AUTHENTICATION templates.",
            )
        return
    if len(otp) != 1 or len(draft.buttons) != 1:
        yield refuse(
            "authentication_shape",
            INVALID_PARAMETER,
            "An AUTHENTICATION template needs exactly one button, of type OTP.",
        )
    elif otp[0].otp_type not in OTP_TYPES:
        yield refuse(
            "authentication_shape",
            INVALID_PARAMETER,
            f"The OTP button's otp_type must be one of {', '.join(OTP_TYPES)}.",
        )
    if draft.header is not None:
        yield refuse(
            "authentication_shape",
            INVALID_PARAMETER,
            "AUTHENTICATION templates have no header (no media, no text).",
        )
    minutes = draft.code_expiration_minutes
    if minutes is not None and not 1 <= minutes <= 90:
        yield refuse(
            "authentication_shape",
            INVALID_PARAMETER,
            "code_expiration_minutes must be between 1 and 90.",
        )
    if any(len(v) > AUTH_PARAMETER_MAX for _, v in draft.body.examples):
        yield refuse(
            "authentication_shape",
            INVALID_PARAMETER,
            f"Authentication parameters are at most {AUTH_PARAMETER_MAX} characters.",
        )


# -- content --------------------------------------------------------------------------------------

_THREATS = re.compile(
    r"\b(?:we will|we'll|i will|i'll) (?:find|hurt|kill|ruin|destroy|come for|expose) you"
    r"|\bor else\b|\byou(?:'ll| will) regret\b|\bwe know where you live\b"
    r"|\b(?:kill|beat|hurt) (?:you|your family)\b|\bidiot\b|\bstupid\b|\bmoron\b|\bscum\b",
    re.I,
)
_ASK = r"(?:send|reply with|text|share|provide|give|enter|confirm|tell|submit|verify)"
_SENSITIVE = (
    r"(?:full |complete |whole )?(?:card number|credit card|debit card|cvv|cvc|security code on"
    r"|\bpin\b|pin code|password|online banking login|social security|ssn|passport number"
    r"|national id|id number|tax id|bank login|mother'?s maiden name)"
)
_SENSITIVE_REQUEST = re.compile(
    rf"(?<!not )(?<!never )(?<!n't )\b{_ASK}\b(?:\W+\w+){{0,5}}?\W+{_SENSITIVE}", re.I
)
_SCAM = re.compile(
    r"you(?:'ve| have) won|claim your (?:prize|winnings|inheritance)|wire (?:the )?(?:fee|money)"
    r"|pay (?:with|using) (?:gift cards?|itunes cards?)|double your (?:money|bitcoin|crypto)"
    r"|guaranteed (?:returns?|profit)|processing fee to release",
    re.I,
)


@rule("abusive_content")
def check_abuse(draft: TemplateDraft, _: ReviewContext) -> Iterator[Finding]:
    for text in draft.texts():
        found = _THREATS.search(text)
        if found:
            yield reject(
                "abusive_content",
                "ABUSIVE_CONTENT",
                f"The text contains threatening or abusive language ('{found.group(0)}').",
            )
            return


@rule("sensitive_data_request")
def check_sensitive_request(draft: TemplateDraft, _: ReviewContext) -> Iterator[Finding]:
    for text in draft.texts():
        found = _SENSITIVE_REQUEST.search(text)
        if found:
            yield reject(
                "sensitive_data_request",
                "SCAM",
                "The template asks customers for sensitive data over chat"
                f" ('{found.group(0)}'): never ask for full card numbers, PINs, passwords or"
                " identity numbers.",
            )
            return


@rule("scam_content")
def check_scam(draft: TemplateDraft, _: ReviewContext) -> Iterator[Finding]:
    for text in draft.texts():
        found = _SCAM.search(text)
        if found:
            yield reject(
                "scam_content",
                "SCAM",
                f"The text reads like a known scam pattern ('{found.group(0)}').",
            )
            return


@rule("duplicate_content")
def check_duplicate(draft: TemplateDraft, context: ReviewContext) -> Iterator[Finding]:
    if draft.category != AUTHENTICATION and (
        (draft.body.text, draft.footer or "") in context.existing_texts
    ):
        yield reject(
            "duplicate_content",
            "INVALID_FORMAT",
            "Another template of this business already has the same body and footer.",
        )
