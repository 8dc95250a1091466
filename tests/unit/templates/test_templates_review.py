"""Every review rule has a failing and a passing case; findings are readable and named."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.templates.labelled import default_model
from tidings.templates.review import (
    RECATEGORIZE,
    REFUSE,
    REJECT,
    RULES,
    ReviewContext,
    ReviewSettings,
    review,
)
from tidings.templates.schemas import parse_create

GOOD_BODY = "Hi {{1}}, your order {{2}} has shipped and arrives tomorrow."


def template(
    text: str = GOOD_BODY,
    examples: list[str] | None = None,
    *,
    category: str = "UTILITY",
    header: dict[str, Any] | None = None,
    footer: str | None = None,
    buttons: list[dict[str, Any]] | None = None,
    parameter_format: str | None = None,
    body_component: dict[str, Any] | None = None,
) -> dict[str, Any]:
    values = examples if examples is not None else ["Ann", "A-1", "x", "y", "z"][: text.count("{{")]
    body: dict[str, Any] = body_component or {"type": "BODY", "text": text}
    if values and body_component is None:
        body["example"] = {"body_text": [values]}
    components = [c for c in (header, body) if c]
    if footer is not None:
        components.append({"type": "FOOTER", "text": footer})
    if buttons:
        components.append({"type": "BUTTONS", "buttons": buttons})
    request = {"name": "t", "language": "en_US", "category": category, "components": components}
    if parameter_format:
        request["parameter_format"] = parameter_format
    return request


def named(text: str, examples: dict[str, str]) -> dict[str, Any]:
    return template(
        body_component={
            "type": "BODY",
            "text": text,
            "example": {
                "body_text_named_params": [
                    {"param_name": k, "example": v} for k, v in examples.items()
                ]
            },
        },
        parameter_format="named",
    )


OTP = {"type": "OTP", "otp_type": "COPY_CODE", "text": "Copy code"}
AUTH_BODY = {"type": "BODY", "add_security_recommendation": True}
URL = "https://shop.example/track/{{1}}"

# (rule, failing request, passing request)
CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("lengths", template("Your order is ready. " * 60, []), template()),
    (
        "lengths",
        template(footer="This footer is far too long to fit the sixty character limit."),
        template(footer="Reply STOP to opt out"),
    ),
    (
        "malformed_placeholders",
        template("Your order {{1} is ready for pickup now.", []),
        template("Your order {{1}} is ready for pickup now.", ["A-1"]),
    ),
    ("malformed_placeholders", template(footer="Ref {{1}}"), template(footer="Ref below")),
    (
        "parameter_format",
        template("Hi {{first_name}}, your parcel is on its way now.", ["Ann"]),
        named("Hi {{first_name}}, your parcel is on its way now.", {"first_name": "Ann"}),
    ),
    (
        "parameter_format",
        named("Hi {{name}}, {{name}} your parcel is on its way now.", {"name": "Ann"}),
        named("Hi {{name}}, your parcel {{ref}} is on its way now.", {"name": "Ann", "ref": "P"}),
    ),
    (
        "header_parameters",
        template(
            header={
                "type": "HEADER",
                "format": "TEXT",
                "text": "{{1}} and {{2}} news",
                "example": {"header_text": ["a", "b"]},
            }
        ),
        template(
            header={
                "type": "HEADER",
                "format": "TEXT",
                "text": "News for {{1}}",
                "example": {"header_text": ["Ann"]},
            }
        ),
    ),
    (
        "sequential_parameters",
        template("Hi {{1}}, your order {{3}} has shipped and arrives soon.", ["a", "b"]),
        template("Hi {{1}}, your order {{2}} has shipped and arrives soon.", ["a", "b"]),
    ),
    (
        "leading_or_trailing_parameter",
        template("{{1}} is ready for pickup at the desk.", ["A"]),
        template("Order {{1}} is ready for pickup at the desk.", ["A"]),
    ),
    (
        "leading_or_trailing_parameter",
        template("Your order is ready for pickup, {{1}}", ["A"]),
        template("Your order is ready for pickup, {{1}}.", ["A"]),
    ),
    (
        "adjacent_parameters",
        template("Hello {{1}}{{2}}, your parcel has arrived today.", ["a", "b"]),
        template("Hello {{1}} and {{2}}, your parcel has arrived today.", ["a", "b"]),
    ),
    (
        "parameter_density",
        template("Order {{1}} {{2}} {{3}} ok.", ["a", "b", "c"]),
        template("Order {{1}} for {{2}} ships on {{3}} from our warehouse.", ["a", "b", "c"]),
    ),
    ("examples_match", template(GOOD_BODY, []), template()),
    ("examples_match", template(GOOD_BODY, ["only one"]), template(GOOD_BODY, ["Ann", "A-1"])),
    (
        "allowed_characters",
        template("Your order\tis ready for pickup now.", []),
        template("Your order is ready for pickup now.\nSee you soon.", []),
    ),
    (
        "allowed_characters",
        template(header={"type": "HEADER", "format": "TEXT", "text": "*Big* news"}),
        template(header={"type": "HEADER", "format": "TEXT", "text": "Big news"}),
    ),
    (
        "button_counts",
        template(
            buttons=[
                {"type": "URL", "text": f"Link {i}", "url": "https://a.example"} for i in range(3)
            ]
        ),
        template(
            buttons=[
                {"type": "URL", "text": f"Link {i}", "url": "https://a.example"} for i in range(2)
            ]
        ),
    ),
    (
        "quick_reply_grouping",
        template(
            buttons=[
                {"type": "QUICK_REPLY", "text": "Yes"},
                {"type": "URL", "text": "Track", "url": "https://a.example"},
                {"type": "QUICK_REPLY", "text": "No"},
            ]
        ),
        template(
            buttons=[
                {"type": "QUICK_REPLY", "text": "Yes"},
                {"type": "QUICK_REPLY", "text": "No"},
                {"type": "URL", "text": "Track", "url": "https://a.example"},
            ]
        ),
    ),
    (
        "url_buttons",
        template(
            buttons=[
                {
                    "type": "URL",
                    "text": "Track",
                    "url": "https://a.example/{{1}}/x",
                    "example": ["https://a.example/1/x"],
                }
            ]
        ),
        template(
            buttons=[
                {
                    "type": "URL",
                    "text": "Track",
                    "url": URL,
                    "example": ["https://shop.example/track/A-1"],
                }
            ]
        ),
    ),
    (
        "url_buttons",
        template(buttons=[{"type": "URL", "text": "Track", "url": URL}]),  # no example
        template(buttons=[{"type": "URL", "text": "Track", "url": "https://shop.example/t"}]),
    ),
    (
        "link_shorteners",
        template(buttons=[{"type": "URL", "text": "Track", "url": "https://bit.ly/abc"}]),
        template(buttons=[{"type": "URL", "text": "Track", "url": "https://shop.example/abc"}]),
    ),
    (
        "phone_number_buttons",
        template(buttons=[{"type": "PHONE_NUMBER", "text": "Call", "phone_number": "call us"}]),
        template(buttons=[{"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+15550101"}]),
    ),
    (
        "copy_code_buttons",
        template(buttons=[{"type": "COPY_CODE", "example": "THIS-CODE-IS-TOO-LONG"}]),
        template(buttons=[{"type": "COPY_CODE", "example": "ORDER42"}]),
    ),
    (
        "media_header_example",
        template(header={"type": "HEADER", "format": "IMAGE"}),
        template(
            header={
                "type": "HEADER",
                "format": "IMAGE",
                "example": {"header_handle": ["4::aW1hZ2U="]},
            }
        ),
    ),
    (
        "authentication_shape",
        template(category="AUTHENTICATION", body_component=AUTH_BODY),  # no OTP button
        template(category="AUTHENTICATION", body_component=AUTH_BODY, buttons=[OTP]),
    ),
    ("authentication_shape", template(buttons=[OTP]), template()),
    (
        "abusive_content",
        template("Pay invoice {{1}} by Friday or else we will find you, {{2}}.", ["a", "b"]),
        template("Please pay invoice {{1}} by Friday, {{2}}. Thank you.", ["a", "b"]),
    ),
    (
        "sensitive_data_request",
        template(
            "Hi {{1}}, please reply with your full card number to confirm order {{2}}.", ["a", "b"]
        ),
        template(
            "Hi {{1}}, we will never ask for your card number. Order {{2}} is confirmed.",
            ["a", "b"],
        ),
    ),
    (
        "scam_content",
        template(
            "Congratulations {{1}}, you have won a prize! Send the fee to claim it today.", ["Ann"]
        ),
        template("Congratulations {{1}}, your registration for the race is complete.", ["Ann"]),
    ),
]


def run(request: dict[str, Any], context: ReviewContext | None = None, **settings: Any):
    draft, _, _ = parse_create(request)
    return review(draft, default_model(), context or ReviewContext(), ReviewSettings(**settings))


def rules_hit(verdict) -> set[str]:
    return {f.rule for f in verdict.findings}


@pytest.mark.parametrize(("rule", "failing", "passing"), CASES, ids=[c[0] for c in CASES])
def test_rule_fails_and_passes(rule: str, failing: dict[str, Any], passing: dict[str, Any]) -> None:
    bad = run(failing)
    assert rule in rules_hit(bad), bad.summary()
    finding = next(f for f in bad.findings if f.rule == rule)
    assert finding.outcome in (REFUSE, REJECT)
    assert finding.message.endswith(".") and len(finding.message) > 20  # a readable sentence
    assert (finding.graph_code is not None) == (finding.outcome == REFUSE)
    good = run(passing)
    assert rule not in rules_hit(good), good.summary()


def test_duplicate_content_fails_and_passes() -> None:
    seen = ReviewContext(frozenset({(GOOD_BODY, "")}))
    assert "duplicate_content" in rules_hit(run(template(), seen))
    assert "duplicate_content" not in rules_hit(run(template(footer="Thanks"), seen))


PROMO_UTILITY = template(
    "Hi {{1}}, your order {{2}} shipped! Use code THANKS10 for 10% off your next purchase,"
    " shop now.",
    ["Ann", "A-1"],
)


def test_category_check_recategorizes_or_rejects_promotional_utility() -> None:
    verdict = run(PROMO_UTILITY)
    assert (verdict.status, verdict.category, verdict.filed_category) == (
        "APPROVED",
        "MARKETING",
        "UTILITY",
    )
    [finding] = [f for f in verdict.findings if f.rule == "category_check"]
    assert finding.outcome == RECATEGORIZE and "promotional" in finding.message
    assert "#percent" in finding.message or "code" in finding.message  # the evidence is quoted
    strict = run(PROMO_UTILITY, miscategorized="reject")
    assert (strict.status, strict.reason) == ("REJECTED", "INCORRECT_CATEGORY")
    plain = run(template())
    assert (plain.status, plain.category, plain.findings) == ("APPROVED", "UTILITY", ())


def test_category_check_rejects_a_one_time_code_filed_as_utility() -> None:
    otp_as_utility = template(
        "Your verification code is {{1}}. Do not share this code with anyone, it expires soon.",
        ["123456"],
    )
    verdict = run(otp_as_utility)
    assert (verdict.status, verdict.reason) == ("REJECTED", "INCORRECT_CATEGORY")


def test_human_review_settings_hold_templates_for_a_person() -> None:
    assert run(template(), human_review="always").status == "PENDING"
    assert run(template(), human_review="uncertain").status == "APPROVED"
    held = run(PROMO_UTILITY, human_review="uncertain")
    assert (held.status, held.category, held.needs_human) == ("PENDING", "MARKETING", True)
    # Refusals and rejections never wait for a person.
    assert run(template(GOOD_BODY, []), human_review="always").refusal is not None


def test_every_rule_has_cases() -> None:
    covered = {rule for rule, _, _ in CASES} | {"duplicate_content"}
    assert covered == set(RULES)
