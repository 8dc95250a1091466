"""Rendering a template send (pure): Meta's own send examples render against approved versions
shaped like the templates they name, and each refusal carries Meta's code."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tidings.business_api import wire
from tidings.templates.render import (
    ApprovedVersion,
    TemplateSendRefused,
    media_reference,
    render,
)

_BESIDE_CHECKOUT = (
    Path(__file__).resolve().parents[3].parent
    / "shared/reference/meta-openapi/business-messaging-api_v23.0.yaml"
)
SPEC = Path(os.environ.get("TIDINGS_META_OPENAPI", str(_BESIDE_CHECKOUT)))

THREE_PARAMS = {"type": "BODY", "text": "Hi {{1}}, you paid {{2}} on {{3}}, thanks."}


def approved(*components: dict[str, Any], **fields: Any) -> ApprovedVersion:
    values: dict[str, Any] = {
        "name": "t",
        "language": "en_US",
        "category": "UTILITY",
        "parameter_format": "POSITIONAL",
        "components": components,
    }
    return ApprovedVersion(**(values | fields))


@cache
def meta_template_sends() -> dict[str, dict[str, Any]]:
    if not SPEC.exists():
        return {}
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC.open(encoding="utf-8") as fh:
        spec = yaml.load(fh, Loader=loader)
    op = spec["paths"]["/{Version}/{Phone-Number-ID}/messages"]["post"]
    examples = op["requestBody"]["content"]["application/json"]["examples"]
    return {
        name: example["value"]
        for name, example in examples.items()
        if example["value"].get("type") == "template"
    }


# The approved templates Meta's examples name, as a business would have created them.
MATCHING = {
    "Send Catalog Template Message": approved(
        {"type": "BODY", "text": "Now shop {{1}} items, from {{2}} down to {{3}} dollars."},
        {"type": "BUTTONS", "buttons": [{"type": "CATALOG", "text": "View catalog"}]},
        category="MARKETING",
    ),
    "Send Flow Template Message": approved(
        {"type": "BODY", "text": "Book your next visit with us in a few taps."},
        {"type": "BUTTONS", "buttons": [{"type": "FLOW", "text": "Book now"}]},
    ),
    "Send Message Template Interactive": approved(
        {"type": "HEADER", "format": "IMAGE"},
        THREE_PARAMS,
        {
            "type": "BUTTONS",
            "buttons": [
                {"type": "QUICK_REPLY", "text": "Yes"},
                {"type": "QUICK_REPLY", "text": "No"},
            ],
        },
    ),
    "Send Message Template Media": approved({"type": "HEADER", "format": "IMAGE"}, THREE_PARAMS),
    "Send Message Template Text": approved(THREE_PARAMS),
    "Send Sample Issue Resolution Template": approved(
        {"type": "BODY", "text": "Hi {{1}}, was your issue resolved?"},
        {
            "type": "BUTTONS",
            "buttons": [
                {"type": "QUICK_REPLY", "text": "Yes"},
                {"type": "QUICK_REPLY", "text": "No"},
            ],
        },
    ),
    "Send Sample Shipping Confirmation Template": approved(THREE_PARAMS),
    "Send Sample Text Message": approved(THREE_PARAMS),
    "Send Test Message": approved(
        {"type": "BODY", "text": "Welcome and congratulations!! This message demonstrates"}
    ),
}


@pytest.mark.skipif(not SPEC.exists(), reason=f"Meta's OpenAPI file not at {SPEC}")
@pytest.mark.parametrize("name", sorted(MATCHING))
def test_meta_send_examples_render(name: str) -> None:
    parsed = wire.parse_messages_request(meta_template_sends()[name])
    assert isinstance(parsed, wire.SendRequest)
    content = render(MATCHING[name], parsed.message.payload.get("components", []))
    assert "{{" not in content["body"]["text"]
    if MATCHING[name].components[-1] is THREE_PARAMS:
        assert "$100.99" in content["body"]["text"]  # currency renders its fallback_value
        assert "February 25, 1977" in content["body"]["text"]  # and date_time its own


def test_meta_examples_cover_every_template_send() -> None:
    if SPEC.exists():
        assert set(meta_template_sends()) == set(MATCHING)


def test_meta_sample_quick_reply_text_payload_and_media_reference() -> None:
    rendered = render(
        MATCHING["Send Message Template Interactive"],
        [
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://x/i"}}]},
            {"type": "body", "parameters": [{"type": "text", "text": "a"}] * 3},
            {
                "type": "button",
                "sub_type": "quick_reply",
                "index": "1",
                "parameters": [{"type": "text", "text": True}],
            },
        ],
    )
    assert rendered["buttons"] == [
        {"type": "QUICK_REPLY", "text": "Yes", "payload": "Yes"},
        {"type": "QUICK_REPLY", "text": "No", "payload": "true"},
    ]
    assert media_reference(rendered) == ("image", {"link": "https://x/i"})


def refused(version: ApprovedVersion, components: list[dict[str, Any]]) -> int:
    with pytest.raises(TemplateSendRefused) as info:
        render(version, components)
    return info.value.code


def body(*values: Any) -> dict[str, Any]:
    return {"type": "body", "parameters": [{"type": "text", "text": v} for v in values]}


def test_refusals_carry_metas_codes() -> None:
    plain = approved(THREE_PARAMS)
    assert refused(plain, [body("a", "b")]) == 132000
    assert refused(plain, []) == 132000
    assert refused(plain, [body("a", "b", "c"), body("a", "b", "c")]) == 131009
    assert refused(plain, [body("a", "b", "c"), {"type": "carousel"}]) == 131009
    assert refused(plain, [body("a", "b", "c"), {"type": "header", "parameters": []}]) == 132000
    assert refused(plain, [body("a", "b", 3)]) == 132012
    assert refused(plain, [body("a", "b", "")]) == 131008
    assert refused(plain, [body("a", "b", "c" * 1010)]) == 132005
    assert refused(plain, [body("a", "b", "two\r\nlines")]) == 132007
    four_spaces = render(plain, [body("a", "b", "    four spaces is fine")])
    assert "on     four spaces is fine," in four_spaces["body"]["text"]
    money = {"type": "currency", "currency": {"fallback_value": "$1", "code": "USD"}}
    assert refused(plain, [{"type": "body", "parameters": [money] * 3}]) == 132012
    image = {"type": "image", "image": {"id": "1"}}
    assert refused(plain, [{"type": "body", "parameters": [image] * 3}]) == 132012


def test_header_kinds() -> None:
    located = approved({"type": "HEADER", "format": "LOCATION"}, {"type": "BODY", "text": "x"})
    place = {"type": "location", "location": {"latitude": 95, "longitude": 0}}
    assert refused(located, [{"type": "header", "parameters": [place]}]) == 132012
    assert refused(located, []) == 132000
    video = approved({"type": "HEADER", "format": "VIDEO"}, {"type": "BODY", "text": "x"})
    both = {"type": "video", "video": {"id": "1", "link": "https://x"}}
    assert refused(video, [{"type": "header", "parameters": [both]}]) == 131009
    image = {"type": "image", "image": {"id": "1"}}
    assert refused(video, [{"type": "header", "parameters": [image]}]) == 132012
    gif = approved({"type": "HEADER", "format": "GIF"}, {"type": "BODY", "text": "x"})
    shown = render(gif, [{"type": "header", "parameters": [{"type": "gif", "gif": {"id": "7"}}]}])
    assert shown["header"] == {"format": "GIF", "video": {"id": "7"}}
    assert refused(approved({"type": "BODY", "text": "x"}), [{"type": "header"}]) == 132000


def test_buttons_by_sub_type_and_index() -> None:
    version = approved(
        {"type": "BODY", "text": "Your code"},
        {
            "type": "BUTTONS",
            "buttons": [
                {"type": "URL", "text": "Open", "url": "https://shop.example/o/{{1}}"},
                {"type": "URL", "text": "Help", "url": "https://shop.example/help"},
                {"type": "COPY_CODE", "example": "SAVE10"},
            ],
        },
    )

    def button(index: int, sub_type: str, *parameters: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "button",
            "sub_type": sub_type,
            "index": str(index),
            "parameters": list(parameters),
        }

    suffix = {"type": "text", "text": "A-1"}
    code = {"type": "coupon_code", "coupon_code": "SAVE10"}
    good = render(version, [button(0, "url", suffix), button(2, "copy_code", code)])
    assert [b.get("url") or b.get("code") for b in good["buttons"]] == [
        "https://shop.example/o/A-1",
        "https://shop.example/help",
        "SAVE10",
    ]
    assert refused(version, [button(2, "copy_code", code)]) == 132000  # no URL suffix
    assert refused(version, [button(0, "url", suffix)]) == 132000  # no coupon code
    assert (
        refused(
            version,
            [button(0, "url", suffix), button(1, "url", suffix), button(2, "copy_code", code)],
        )
        == 132000
    )  # static URL
    assert refused(version, [button(0, "quick_reply", suffix), button(2, "copy_code", code)]) == (
        132012
    )
    bad_code = {"type": "coupon_code", "coupon_code": "SAVE 10%"}
    assert refused(version, [button(0, "url", suffix), button(2, "copy_code", bad_code)]) == 132012
    spaced = {"type": "text", "text": "a b"}
    assert refused(version, [button(0, "url", spaced), button(2, "copy_code", code)]) == 132007


def test_named_parameters_and_authentication_codes() -> None:
    named = approved(
        {"type": "BODY", "text": "Hello {{first_name}}, see you {{day}}."},
        parameter_format="NAMED",
    )

    def param(name: str, value: str) -> dict[str, Any]:
        return {"type": "text", "text": value, "parameter_name": name}

    shown = render(
        named,
        [{"type": "body", "parameters": [param("day", "Monday"), param("first_name", "Ann")]}],
    )
    assert shown["body"]["text"] == "Hello Ann, see you Monday."
    twice = [param("day", "Monday"), param("day", "Friday")]
    assert refused(named, [{"type": "body", "parameters": twice}]) == 132000
    auth = approved(
        {"type": "BODY", "text": "{{1}} is your verification code."},
        {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "ONE_TAP"}]},
        category="AUTHENTICATION",
    )
    otp = {
        "type": "button",
        "sub_type": "url",
        "index": 0,
        "parameters": [{"type": "text", "text": "123456"}],
    }
    sent = render(auth, [body("123456"), {**otp, "index": "0"}])
    assert sent["buttons"] == [{"type": "OTP", "text": "Autofill", "code": "123456"}]
    assert refused(auth, [body("1234567890123456"), {**otp, "index": "0"}]) == 132005
    assert refused(auth, [body("123456")]) == 132000
