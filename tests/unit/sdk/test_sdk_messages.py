"""Message models: what a client makes of content from an untrusted sender, the replies it
sends back, and safety numbers."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.crypto import AccountKey
from tidings.sdk import messages
from tidings.sdk.messages import (
    Button,
    Contacts,
    Interactive,
    InteractiveReply,
    ListRow,
    Location,
    Media,
    Reaction,
    Template,
    Text,
    Unsupported,
    parse,
)
from tidings.sdk.safety import grouped, safety_number


def test_text_in_both_shapes_with_links_and_a_quote() -> None:
    parsed = parse(
        {
            "type": "text",
            "text": {"body": "See https://a.example/x, and http://b.example."},
            "context": {"message_id": "abc", "from": "+15550109999"},
        }
    )
    assert isinstance(parsed.body, Text)
    assert parsed.body.links == ["https://a.example/x", "http://b.example"]
    assert parsed.quote is not None and parsed.quote.message_id == "abc"
    assert parse({"text": "plain person-to-person"}).body == Text("plain person-to-person")


def test_interactive_buttons_list_cta_and_location_request() -> None:
    buttons = parse(
        {
            "type": "interactive",
            "interactive": {
                "type": "button",
                "header": {"type": "text", "text": "Shop"},
                "body": {"text": "Hi"},
                "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "A"}}]},
            },
        }
    ).body
    assert isinstance(buttons, Interactive)
    assert buttons.buttons == (Button("a", "A"),) and buttons.header is not None
    menu = parse(
        {
            "type": "interactive",
            "interactive": {
                "type": "list",
                "body": {"text": "Pick"},
                "action": {
                    "button": "Menu",
                    "sections": [{"title": "S", "rows": [{"id": "r1", "title": "One"}, {}]}],
                },
            },
        }
    ).body
    assert isinstance(menu, Interactive)
    assert menu.menu == "Menu" and menu.rows == [ListRow("r1", "One")]  # the row without id drops
    cta = parse(
        {
            "type": "interactive",
            "interactive": {
                "type": "cta_url",
                "body": {"text": "Go"},
                "action": {"name": "cta_url", "parameters": {"display_text": "Open", "url": "u"}},
            },
        }
    ).body
    assert isinstance(cta, Interactive) and cta.link is not None and cta.link.value == "u"
    ask = parse(
        {
            "type": "interactive",
            "interactive": {"type": "location_request_message", "body": {"text": "Where?"}},
        }
    ).body
    assert isinstance(ask, Interactive) and ask.kind == "location_request_message"


def test_template_with_every_button_kind() -> None:
    body = parse(
        {
            "type": "template",
            "template": {
                "name": "t",
                "category": "UTILITY",
                "header": {"format": "TEXT", "text": "H"},
                "body": {"text": "B"},
                "footer": {"text": "F"},
                "buttons": [
                    {"type": "QUICK_REPLY", "text": "Yes", "payload": "p-yes"},
                    {"type": "URL", "text": "Track", "url": "https://x"},
                    {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+1555"},
                    {"type": "COPY_CODE", "text": "Copy", "code": "SAVE10"},
                    {"type": "OTP", "text": "Code", "code": "123456"},
                ],
            },
        }
    ).body
    assert isinstance(body, Template)
    assert body.buttons == (Button("p-yes", "Yes", "quick_reply"),)
    assert [(link.kind, link.value) for link in body.links] == [
        ("url", "https://x"),
        ("phone", "+1555"),
        ("copy", "SAVE10"),
        ("copy", "123456"),
    ]
    reply = messages.template_quick_reply(body.buttons[0], "m1", "+15550109999")
    assert reply == {
        "type": "button",
        "button": {"text": "Yes", "payload": "p-yes"},
        "context": {"message_id": "m1", "from": "+15550109999"},
    }


def test_media_location_contacts_reaction() -> None:
    media = parse({"type": "image", "image": {"caption": "c", "attachment": {"mime_type": "x/y"}}})
    assert isinstance(media.body, Media) and media.body.mime_type == "x/y"
    place = parse({"type": "location", "location": {"latitude": 1, "longitude": 2}}).body
    assert place == Location(1.0, 2.0)
    people = parse({"type": "contacts", "contacts": [{"name": {"formatted_name": "Ann"}}]}).body
    assert isinstance(people, Contacts) and people.contacts[0].name == "Ann"
    reaction = parse({"type": "reaction", "reaction": {"message_id": "x", "emoji": "👍"}}).body
    assert reaction == Reaction("x", "👍")


@pytest.mark.parametrize(
    "content",
    [
        {},
        {"type": 7},
        {"type": "text", "text": {"body": 5}},
        {"type": "location", "location": {"latitude": "north", "longitude": 2}},
        {"type": "location", "location": {"latitude": True, "longitude": 2}},
        {"type": "contacts", "contacts": "Ann"},
        {"type": "interactive", "interactive": {"type": "button_reply", "button_reply": {}}},
        {"type": "template", "template": {"body": {"text": "no name"}}},
        {"type": "reaction", "reaction": {"emoji": None}},
        {"type": "button", "button": {"text": "no payload"}},
        {"type": "hologram", "hologram": {}},
        {"type": "interactive", "interactive": "not a dict"},
    ],
)
def test_malformed_content_is_unsupported_never_an_error(content: dict[str, Any]) -> None:
    parsed = parse(content)
    assert isinstance(parsed.body, Unsupported)
    assert messages.preview(content).startswith("[")


def test_reply_builders_match_the_content_contract() -> None:
    assert messages.button_reply(Button("track", "Track my order")) == {
        "type": "interactive",
        "interactive": {
            "type": "button_reply",
            "button_reply": {"id": "track", "title": "Track my order"},
        },
    }
    assert messages.list_reply(ListRow("o1", "Teapot", "Shipped"))["interactive"] == {
        "type": "list_reply",
        "list_reply": {"id": "o1", "title": "Teapot", "description": "Shipped"},
    }
    assert messages.marketing_preference(True) == {
        "type": "preferences",
        "preferences": {"marketing": "stop"},
    }
    assert messages.block_request(True, True, "spam") == {
        "type": "block",
        "block": {"blocked": True, "report": True, "reason": "spam"},
    }
    parsed = parse(messages.button_reply(Button("track", "Track my order")))
    assert parsed.body == InteractiveReply("button_reply", "track", "Track my order")


def test_safety_numbers_agree_on_both_sides_and_change_with_the_key() -> None:
    alice, bob = AccountKey.generate().public_b64, AccountKey.generate().public_b64
    mine = safety_number("+15550100001", alice, "+15550100002", bob)
    theirs = safety_number("+15550100002", bob, "+15550100001", alice)
    assert mine == theirs and len(mine) == 60 and mine.isdigit()
    other = safety_number("+15550100001", alice, "+15550100002", AccountKey.generate().public_b64)
    assert other != mine
    assert grouped(mine).count("\n") == 2 and len(grouped(mine).split()) == 12
