"""The wire layer against Meta's own OpenAPI examples (facebook/openapi, v23.0).

The 50 `sendMessage` request examples must parse (or parse into the designated "unsupported"
marker), and the webhook builders must reproduce the 16 `/whatsapp/webhooks` examples they
cover. The YAML lives outside the repository; set TIDINGS_META_OPENAPI to point elsewhere.
"""

from __future__ import annotations

import copy
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tidings.business_api import wire
from tidings.business_api.graph_errors import GraphCode, GraphError

# shared/ sits beside the checkout (as in CI).
_BESIDE_CHECKOUT = (
    Path(__file__).resolve().parents[3].parent
    / "shared/reference/meta-openapi/business-messaging-api_v23.0.yaml"
)
SPEC = Path(os.environ.get("TIDINGS_META_OPENAPI", str(_BESIDE_CHECKOUT)))
pytestmark = pytest.mark.skipif(not SPEC.exists(), reason=f"Meta's OpenAPI file not at {SPEC}")


@cache
def spec() -> dict[str, Any]:
    # The file has an unquoted `200:` key under /whatsapp/webhooks; safe_load takes it as int.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC.open(encoding="utf-8") as fh:
        loaded: dict[str, Any] = yaml.load(fh, Loader=loader)
    return loaded


def send_examples() -> dict[str, dict[str, Any]]:
    if not SPEC.exists():
        return {}
    op = spec()["paths"]["/{Version}/{Phone-Number-ID}/messages"]["post"]
    examples = op["requestBody"]["content"]["application/json"]["examples"]
    return {name: ex["value"] for name, ex in examples.items()}


def webhook_examples() -> dict[str, dict[str, Any]]:
    if not SPEC.exists():
        return {}
    op = spec()["paths"]["/whatsapp/webhooks"]["post"]
    examples = op["requestBody"]["content"]["application/json"]["examples"]
    return {name: ex["value"] for name, ex in examples.items()}


def kind_of(body: dict[str, Any]) -> str:
    if "status" in body:
        return "read"
    if body.get("type") == "template":
        return "template"
    interactive = body.get("interactive")
    if isinstance(interactive, dict) and interactive.get("type") in wire.UNSUPPORTED_INTERACTIVE:
        return "unsupported"
    return "supported"


SENDS = send_examples()


def test_the_spec_has_fifty_send_examples_of_each_expected_kind() -> None:
    kinds = [kind_of(body) for body in SENDS.values()]
    assert len(SENDS) == 50
    assert kinds.count("read") == 1
    assert kinds.count("template") == 9
    # catalog, 4 flows, multi-product, single product, order details, order status
    assert kinds.count("unsupported") == 9
    assert kinds.count("supported") == 31


@pytest.mark.parametrize("name", [n for n, b in SENDS.items() if kind_of(b) == "supported"])
def test_supported_example_parses(name: str) -> None:
    body = SENDS[name]
    original = copy.deepcopy(body)
    parsed = wire.parse_messages_request(body)
    assert isinstance(parsed, wire.SendRequest)
    message = parsed.message
    assert message.unsupported is None
    parsed.require_supported()
    assert message.to_input == body["to"]
    assert message.type == body.get("type", message.type)
    assert message.type in body  # the payload came from the object named by type
    context = body.get("context")
    assert message.context_message_id == (context["message_id"] if context else None)
    assert body == original  # parsing never mutates the caller's body


def test_examples_without_type_take_the_one_object_they_carry() -> None:
    preview = wire.parse_messages_request(SENDS["Send Text Message with Preview URL"])
    assert isinstance(preview, wire.SendRequest)
    assert preview.message.type == "text"
    assert preview.message.payload["preview_url"] is True
    reply = wire.parse_messages_request(SENDS["Send Reply to List Message"])
    assert isinstance(reply, wire.SendRequest)
    assert reply.message.type == "interactive"
    assert reply.message.interactive_type == "list"


@pytest.mark.parametrize("name", [n for n, b in SENDS.items() if kind_of(b) == "template"])
def test_template_example_parses_loosely(name: str) -> None:
    parsed = wire.parse_messages_request(SENDS[name])
    assert isinstance(parsed, wire.SendRequest)
    message = parsed.message
    assert message.type == "template" and message.unsupported is None
    assert message.payload["name"] == SENDS[name]["template"]["name"]
    for component in message.payload.get("components", []):
        assert component["type"] == component["type"].lower()
        if "index" in component:
            assert isinstance(component["index"], str)


@pytest.mark.parametrize("name", [n for n, b in SENDS.items() if kind_of(b) == "unsupported"])
def test_unsupported_interactive_example_gives_a_clear_error(name: str) -> None:
    parsed = wire.parse_messages_request(SENDS[name])
    assert isinstance(parsed, wire.SendRequest)
    kind = SENDS[name]["interactive"]["type"]
    assert parsed.message.interactive_type == kind
    with pytest.raises(GraphError) as info:
        parsed.require_supported()
    assert info.value.graph_code == GraphCode.UNSUPPORTED_MESSAGE_TYPE
    assert info.value.http_status == 400
    assert f"'{kind}'" in info.value.graph_details


def test_read_receipt_example() -> None:
    parsed = wire.parse_messages_request(SENDS["Send typing indicator and read receipt"])
    assert isinstance(parsed, wire.ReadRequest)
    assert parsed.message_id.startswith("wamid.")
    assert parsed.typing_indicator is True


def test_contacts_example_keeps_every_field() -> None:
    body = SENDS["Send Contact Message"]
    parsed = wire.parse_messages_request(body)
    assert isinstance(parsed, wire.SendRequest)
    assert parsed.message.payload == body["contacts"]


def test_list_example_payload_round_trips() -> None:
    body = SENDS["Send List Message"]
    parsed = wire.parse_messages_request(body)
    assert isinstance(parsed, wire.SendRequest)
    assert parsed.message.payload == body["interactive"]


# --- webhooks ---------------------------------------------------------------------------------

HOOKS = webhook_examples()


def _rebuild(example: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    entry = example["entry"][0]
    value = entry["changes"][0]["value"]
    contact = value["contacts"][0]
    return wire.envelope(
        entry["id"],
        "messages",
        wire.inbound_message_value(
            phone_number_id=value["metadata"]["phone_number_id"],
            display_phone_number=value["metadata"]["display_phone_number"],
            wa_id=contact["wa_id"],
            profile_name=contact["profile"]["name"],
            user_id=None,
            message=message,
        ),
    )


def _message(example: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = example["entry"][0]["changes"][0]["value"]["messages"][0]
    return message


def _common(m: dict[str, Any]) -> dict[str, Any]:
    return {"from_wa_id": m["from"], "message_id": m["id"], "timestamp": int(m["timestamp"])}


def _build(name: str, m: dict[str, Any]) -> dict[str, Any]:
    c = _common(m)
    if name == "Text Message":
        return wire.inbound_text(body=m["text"]["body"], **c)
    if name == "Reaction Message":
        r = m["reaction"]
        return wire.inbound_reaction(reacted_message_id=r["message_id"], emoji=r["emoji"], **c)
    if name == "Image Message":
        i = m["image"]
        return wire.inbound_media(
            "image",
            media_id=i["id"],
            mime_type=i["mime_type"],
            sha256=i["sha256"],
            caption=i["caption"],
            **c,
        )
    if name == "Location Message":
        loc = m["location"]
        return wire.inbound_location(
            latitude=loc["latitude"],
            longitude=loc["longitude"],
            name=loc["name"],
            address=loc["address"],
            url=loc["url"],
            **c,
        )
    if name == "Contact Sharing Message":
        return wire.inbound_contacts(contacts=m["contacts"], **c)
    context = (
        wire.message_context(m["context"]["from"], m["context"]["id"]) if "context" in m else {}
    )
    if name == "Button Message":
        b = m["button"]
        return wire.inbound_button(payload=b["payload"], text=b["text"], context=context, **c)
    if name == "Interactive Button Reply Message":
        r = m["interactive"]["button_reply"]
        return wire.inbound_button_reply(button_id=r["id"], title=r["title"], context=context, **c)
    if name == "Interactive List Reply Message":
        r = m["interactive"]["list_reply"]
        return wire.inbound_list_reply(
            row_id=r["id"],
            title=r["title"],
            description=r["description"],
            context=context,
            **c,
        )
    if name == "Unsupported Message":
        return wire.inbound_unsupported(**c)
    raise AssertionError(name)


BUILT = [
    "Text Message",
    "Reaction Message",
    "Image Message",
    "Location Message",
    "Contact Sharing Message",
    "Button Message",
    "Interactive Button Reply Message",
    "Interactive List Reply Message",
    "Unsupported Message",
]


def test_the_spec_has_sixteen_webhook_examples() -> None:
    assert len(HOOKS) == 16
    assert set(BUILT) <= set(HOOKS)


@pytest.mark.parametrize("name", BUILT)
def test_builders_reproduce_meta_webhook_examples(name: str) -> None:
    example = HOOKS[name]
    built = _rebuild(example, _build(name, _message(example)))
    assert built == example


def _keys_cover(ours: Any, theirs: Any, path: str = "") -> None:
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), path
        missing = set(theirs) - set(ours)
        assert not missing, f"{path}: missing {missing}"
        for key in theirs:
            _keys_cover(ours[key], theirs[key], f"{path}.{key}")
    elif isinstance(theirs, list) and theirs and isinstance(theirs[0], dict):
        assert isinstance(ours, list) and ours, path
        _keys_cover(ours[0], theirs[0], f"{path}[0]")


@pytest.mark.parametrize("name", BUILT)
def test_superset_with_user_id_still_covers_every_key(name: str) -> None:
    example = HOOKS[name]
    entry = example["entry"][0]
    value = entry["changes"][0]["value"]
    ours = wire.envelope(
        entry["id"],
        "messages",
        wire.inbound_message_value(
            phone_number_id=value["metadata"]["phone_number_id"],
            display_phone_number="+" + value["metadata"]["display_phone_number"],
            wa_id="+" + value["contacts"][0]["wa_id"],
            profile_name=value["contacts"][0]["profile"]["name"],
            user_id="US.0123456789abcdef",
            message=_build(name, _message(example)),
        ),
    )
    _keys_cover(ours, example)
    contact = ours["entry"][0]["changes"][0]["value"]["contacts"][0]
    assert contact["user_id"] == "US.0123456789abcdef"
    assert contact["wa_id"] == value["contacts"][0]["wa_id"]  # '+' dropped


def test_product_inquiry_context_is_passed_through() -> None:
    example = HOOKS["Text Message with Context (Product Inquiry)"]
    m = _message(example)
    built = wire.inbound_text(body=m["text"]["body"], context=m["context"], **_common(m))
    assert built == m
