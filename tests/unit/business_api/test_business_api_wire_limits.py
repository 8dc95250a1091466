"""Meta's limits on `/messages` requests, each at the boundary and one over, plus the lenient
inputs real clients send (reference/cloud-api.md §2, §3 and the Appendix)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tidings.business_api import wire
from tidings.business_api.graph_errors import GraphCode, GraphError

MISSING = GraphCode.REQUIRED_PARAMETER_MISSING  # 131008
INVALID = GraphCode.INVALID_PARAMETER  # 100
BAD_COMBO = GraphCode.PARAMETER_VALUE_INVALID  # 131009


def body(type_: str, obj: Any, **extra: Any) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "to": "+15550100001",
        "type": type_,
        type_: obj,
        **extra,
    }


def ok(b: dict[str, Any]) -> wire.OutboundMessage:
    parsed = wire.parse_messages_request(b)
    assert isinstance(parsed, wire.SendRequest)
    parsed.require_supported()
    return parsed.message


def fails(b: Any, code: int, *fragments: str) -> GraphError:
    with pytest.raises(GraphError) as info:
        wire.parse_messages_request(b)
    err = info.value
    assert err.graph_code == code, err.graph_details
    for fragment in fragments:
        assert fragment in err.graph_details, err.graph_details
    return err


def buttons(n: int, *, title: str = "T", id_: str = "b") -> dict[str, Any]:
    return {
        "type": "button",
        "body": {"text": "Pick one"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": f"{id_}{i}", "title": f"{title}{i}"}}
                for i in range(n)
            ]
        },
    }


def rows(n: int, prefix: str = "r") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{i}", "title": f"Row {i}"} for i in range(n)]


def a_list(*sections: list[dict[str, Any]], titled: bool = True) -> dict[str, Any]:
    secs = []
    for i, section_rows in enumerate(sections):
        sec: dict[str, Any] = {"rows": section_rows}
        if titled:
            sec["title"] = f"Section {i}"
        secs.append(sec)
    return {
        "type": "list",
        "body": {"text": "Choose"},
        "action": {"button": "Options", "sections": secs},
    }


def cta(display_text: str = "Open", url: str = "https://example.com/a") -> dict[str, Any]:
    return {
        "type": "cta_url",
        "body": {"text": "See more"},
        "action": {"name": "cta_url", "parameters": {"display_text": display_text, "url": url}},
    }


# --- the envelope -----------------------------------------------------------------------------


def test_body_must_be_an_object() -> None:
    fails([1, 2], INVALID, "JSON object")


def test_messaging_product_must_be_whatsapp() -> None:
    fails(body("text", {"body": "hi"}, messaging_product="messenger"), INVALID, "messaging_product")
    b = body("text", {"body": "hi"})
    del b["messaging_product"]
    err = fails(b, MISSING, "messaging_product")
    assert err.http_status == 400
    assert err.message == "(#131008) Required parameter is missing"


@pytest.mark.parametrize("to", [None, "", "   "])
def test_to_is_required(to: Any) -> None:
    b = body("text", {"body": "hi"})
    if to is None:
        del b["to"]
    else:
        b["to"] = to
    fails(b, MISSING, "The parameter to is required.")


def test_unknown_type_is_an_invalid_parameter() -> None:
    fails(body("hologram", {"x": 1}), INVALID, "Param type must be one of", "'hologram'")


def test_object_named_by_type_is_required() -> None:
    b = {"messaging_product": "whatsapp", "to": "1", "type": "image", "text": {"body": "x"}}
    fails(b, MISSING, "The parameter image is required.")


def test_type_object_must_be_an_object() -> None:
    fails(body("text", "hello"), INVALID, "Param text must be an object.")


def test_biz_opaque_callback_data_limit() -> None:
    msg = ok(body("text", {"body": "hi"}, biz_opaque_callback_data="x" * 512))
    assert msg.biz_opaque_callback_data == "x" * 512
    fails(
        body("text", {"body": "hi"}, biz_opaque_callback_data="x" * 513),
        INVALID,
        "biz_opaque_callback_data",
        "512",
    )


def test_context_is_kept_and_not_allowed_with_a_reaction() -> None:
    msg = ok(body("text", {"body": "hi"}, context={"message_id": "wamid.1"}))
    assert msg.context_message_id == "wamid.1"
    fails(
        body("reaction", {"message_id": "wamid.1", "emoji": "👍"}, context={"message_id": "w"}),
        BAD_COMBO,
        "context",
        "reaction",
    )
    fails(body("text", {"body": "hi"}, context={}), MISSING, "context.message_id")


def test_group_sends_parse_into_the_unsupported_marker() -> None:
    parsed = wire.parse_messages_request(body("text", {"body": "hi"}, recipient_type="group"))
    assert isinstance(parsed, wire.SendRequest)
    assert parsed.message.recipient_type == "group"
    with pytest.raises(GraphError) as info:
        parsed.require_supported()
    assert info.value.graph_code == GraphCode.UNSUPPORTED_MESSAGE_TYPE
    assert "group" in info.value.graph_details.lower()


def test_order_type_parses_into_the_unsupported_marker() -> None:
    parsed = wire.parse_messages_request(body("order", {"catalog_id": "1"}))
    assert isinstance(parsed, wire.SendRequest)
    assert parsed.message.unsupported is not None
    assert parsed.message.unsupported.code == GraphCode.UNSUPPORTED_MESSAGE_TYPE
    assert "'order'" in parsed.message.unsupported.error().graph_details


# --- text -------------------------------------------------------------------------------------


def test_text_body_limit() -> None:
    assert ok(body("text", {"body": "x" * 4096})).payload["body"] == "x" * 4096
    err = fails(body("text", {"body": "x" * 4097}), INVALID, "text.body", "4096")
    assert err.graph_details == "Param text.body must be at most 4096 characters long."


def test_text_body_required_and_not_empty() -> None:
    err = fails(body("text", {"preview_url": True}), MISSING)
    assert err.graph_details == "The parameter text.body is required."
    fails(body("text", {"body": ""}), INVALID, "text.body")


def test_unknown_key_inside_a_type_object() -> None:
    err = fails(body("text", {"body": "hi", "colour": "red"}), INVALID)
    assert err.graph_details == 'Unexpected key "colour" on param "text".'


# --- media ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["image", "video", "document"])
def test_caption_limit(kind: str) -> None:
    ok(body(kind, {"id": "123", "caption": "c" * 1024}))
    fails(body(kind, {"id": "123", "caption": "c" * 1025}), INVALID, f"{kind}.caption", "1024")


@pytest.mark.parametrize("kind", ["image", "video", "audio", "document", "sticker"])
def test_exactly_one_of_id_or_link(kind: str) -> None:
    assert ok(body(kind, {"id": "123"})).payload == {"id": "123"}
    assert ok(body(kind, {"link": "https://x.test/a"})).payload == {"link": "https://x.test/a"}
    fails(body(kind, {"id": "1", "link": "https://x.test/a"}), BAD_COMBO, f"Param {kind} ")
    fails(body(kind, {}), BAD_COMBO, f"Param {kind} ", "id or link")


@pytest.mark.parametrize("kind", ["audio", "sticker"])
def test_audio_and_sticker_take_no_caption(kind: str) -> None:
    fails(body(kind, {"id": "1", "caption": "hi"}), INVALID, f'"caption" on param "{kind}"')


def test_document_filename_and_audio_voice() -> None:
    assert ok(body("document", {"id": "1", "filename": "a.pdf"})).payload["filename"] == "a.pdf"
    assert ok(body("audio", {"id": "1", "voice": True})).payload == {"id": "1", "voice": True}


# --- location ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lat", "lon", "good"),
    [
        (90, 180, True),
        (-90, -180, True),
        (0.0, 0.0, True),
        (90.0001, 0, False),
        (-90.5, 0, False),
        (0, 180.01, False),
        (0, -181, False),
        (float("nan"), 0, False),
    ],
)
def test_latitude_and_longitude_ranges(lat: float, lon: float, good: bool) -> None:
    b = body("location", {"latitude": lat, "longitude": lon, "name": "HQ"})
    if good:
        assert ok(b).payload["latitude"] == lat
    else:
        err = fails(b, INVALID)
        assert "location.latitude" in err.graph_details or "location.longitude" in err.graph_details


def test_location_needs_both_coordinates() -> None:
    fails(body("location", {"latitude": 1}), MISSING, "location.longitude")


# --- contacts ---------------------------------------------------------------------------------


def test_contact_needs_formatted_name() -> None:
    err = fails(body("contacts", [{"name": {"first_name": "Ann"}}]), MISSING)
    assert err.graph_details == "The parameter contacts[0].name.formatted_name is required."
    fails(body("contacts", [{"phones": [{"phone": "+1"}]}]), MISSING, "contacts[0].name")
    fails(body("contacts", []), INVALID, "contacts", "at least 1")


@pytest.mark.parametrize(("birthday", "good"), [("1990-02-28", True), ("1990-02-30", False)])
def test_contact_birthday_is_a_date(birthday: str, good: bool) -> None:
    b = body("contacts", [{"name": {"formatted_name": "Ann"}, "birthday": birthday}])
    if good:
        assert ok(b).payload == [{"name": {"formatted_name": "Ann"}, "birthday": birthday}]
    else:
        fails(b, INVALID, "contacts[0].birthday", "YYYY-MM-DD")


# --- reaction ---------------------------------------------------------------------------------


@pytest.mark.parametrize("emoji", ["", "👍", "👍🏽", "❤️", "👩‍👩‍👧‍👦", "🇧🇷", "1️⃣", "🏴‍☠️"])
def test_reaction_emoji_accepted(emoji: str) -> None:
    assert ok(body("reaction", {"message_id": "wamid.1", "emoji": emoji})).payload["emoji"] == emoji


@pytest.mark.parametrize("emoji", ["a", "👍👍", "ok👍", "🇧", " 👍"])
def test_reaction_emoji_must_be_single(emoji: str) -> None:
    fails(body("reaction", {"message_id": "wamid.1", "emoji": emoji}), INVALID, "reaction.emoji")


def test_reaction_needs_message_id_and_emoji_key() -> None:
    fails(body("reaction", {"emoji": "👍"}), MISSING, "reaction.message_id")
    fails(body("reaction", {"message_id": "w"}), MISSING, "reaction.emoji")


# --- interactive: reply buttons ---------------------------------------------------------------


def test_interactive_type_required_and_known() -> None:
    fails(body("interactive", {"body": {"text": "x"}}), MISSING, "interactive.type")
    fails(body("interactive", {"type": "hologram"}), INVALID, "interactive.type", "'hologram'")


def test_reply_buttons_count() -> None:
    assert ok(body("interactive", buttons(3))).interactive_type == "button"
    fails(body("interactive", buttons(4)), INVALID, "interactive.action.buttons", "at most 3")
    fails(body("interactive", buttons(0)), INVALID, "interactive.action.buttons", "at least 1")


def test_reply_button_title_and_id_limits() -> None:
    ok(body("interactive", buttons(1, title="t" * 19)))  # "t"*19 + "0" = 20 characters
    fails(
        body("interactive", buttons(1, title="t" * 20)),
        INVALID,
        "interactive.action.buttons[0].reply.title",
        "20",
    )
    ok(body("interactive", buttons(1, id_="i" * 255)))
    fails(
        body("interactive", buttons(1, id_="i" * 256)),
        INVALID,
        "interactive.action.buttons[0].reply.id",
        "256",
    )


@pytest.mark.parametrize("attr", ["id", "title"])
def test_reply_buttons_must_be_unique(attr: str) -> None:
    b = buttons(2)
    b["action"]["buttons"][1]["reply"][attr] = b["action"]["buttons"][0]["reply"][attr]
    fails(body("interactive", b), BAD_COMBO, "interactive.action.buttons", f"unique reply {attr}")


def test_button_body_header_footer_limits() -> None:
    b = buttons(1)
    b["body"] = {"text": "x" * 1024}
    b["header"] = {"type": "text", "text": "h" * 60}
    b["footer"] = {"text": "f" * 60}
    ok(body("interactive", b))
    for key, path, limit in (
        ("body", "interactive.body.text", 1025),
        ("header", "interactive.header.text", 61),
        ("footer", "interactive.footer.text", 61),
    ):
        bad = copy.deepcopy(b)
        bad[key]["text"] = "x" * limit
        fails(body("interactive", bad), INVALID, path, str(limit - 1))


def test_button_body_is_required() -> None:
    b = buttons(1)
    del b["body"]
    fails(body("interactive", b), MISSING, "interactive.body")


@pytest.mark.parametrize("kind", ["image", "video", "document"])
def test_button_media_header(kind: str) -> None:
    b = buttons(1)
    b["header"] = {"type": kind, kind: {"link": "https://x.test/m"}}
    assert ok(body("interactive", b)).payload["header"][kind] == {"link": "https://x.test/m"}
    b["header"] = {"type": kind}
    fails(body("interactive", b), MISSING, f"The parameter interactive.header.{kind} is required.")
    b["header"] = {"type": kind, kind: {"id": "1", "link": "https://x.test/m"}}
    fails(body("interactive", b), BAD_COMBO, f"interactive.header.{kind}")


# --- interactive: list ------------------------------------------------------------------------


def test_list_rows_total() -> None:
    assert ok(body("interactive", a_list(rows(10)))).interactive_type == "list"
    ok(body("interactive", a_list(rows(5, "a"), rows(5, "b"))))
    fails(body("interactive", a_list(rows(11))), INVALID, "interactive.action.sections[0].rows")
    fails(
        body("interactive", a_list(rows(6, "a"), rows(5, "b"))),
        BAD_COMBO,
        "interactive.action.sections",
        "at most 10 rows",
    )


def test_list_section_limits() -> None:
    sections = [[{"id": f"r{i}", "title": "t"}] for i in range(10)]
    ok(body("interactive", a_list(*sections)))
    sections.append([{"id": "r10", "title": "t"}])
    fails(body("interactive", a_list(*sections)), INVALID, "interactive.action.sections", "10")
    fails(body("interactive", a_list()), INVALID, "interactive.action.sections", "at least 1")


def test_list_section_title() -> None:
    lst = a_list(rows(2))
    lst["action"]["sections"][0]["title"] = "s" * 24
    ok(body("interactive", lst))
    lst["action"]["sections"][0]["title"] = "s" * 25
    fails(body("interactive", lst), INVALID, "interactive.action.sections[0].title", "24")
    ok(body("interactive", a_list(rows(2), titled=False)))  # one section: title optional
    err = fails(body("interactive", a_list(rows(1, "a"), rows(1, "b"), titled=False)), MISSING)
    assert err.graph_details == "The parameter interactive.action.sections[0].title is required."


@pytest.mark.parametrize(("field", "limit"), [("id", 200), ("title", 24), ("description", 72)])
def test_list_row_limits(field: str, limit: int) -> None:
    lst = a_list(rows(1))
    lst["action"]["sections"][0]["rows"][0][field] = "x" * limit
    ok(body("interactive", lst))
    lst["action"]["sections"][0]["rows"][0][field] = "x" * (limit + 1)
    fails(
        body("interactive", lst),
        INVALID,
        f"interactive.action.sections[0].rows[0].{field}",
        str(limit),
    )


def test_list_row_ids_unique_across_sections() -> None:
    fails(
        body("interactive", a_list(rows(2), rows(2))),
        BAD_COMBO,
        "interactive.action.sections",
        "unique row ids",
    )


def test_list_button_body_header_footer() -> None:
    lst = a_list(rows(1))
    lst["action"]["button"] = "b" * 20
    lst["body"]["text"] = "x" * 4096
    lst["header"] = {"type": "text", "text": "h" * 60}
    lst["footer"] = {"text": "f" * 60}
    ok(body("interactive", lst))
    mutations: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
        ("interactive.action.button", lambda d: d["action"].update(button="b" * 21)),
        ("interactive.body.text", lambda d: d["body"].update(text="x" * 4097)),
        ("interactive.header.text", lambda d: d["header"].update(text="h" * 61)),
        ("interactive.footer.text", lambda d: d["footer"].update(text="f" * 61)),
    ]
    for path, mutate in mutations:
        bad = copy.deepcopy(lst)
        mutate(bad)
        fails(body("interactive", bad), INVALID, path)


def test_list_header_is_text_only() -> None:
    lst = a_list(rows(1))
    lst["header"] = {"type": "image", "image": {"id": "1"}}
    fails(body("interactive", lst), INVALID, "interactive.header")


# --- interactive: CTA URL and location request ------------------------------------------------


def test_cta_url_display_text_limit() -> None:
    msg = ok(body("interactive", cta(display_text="d" * 20)))
    assert msg.payload["action"]["parameters"]["display_text"] == "d" * 20
    fails(
        body("interactive", cta(display_text="d" * 21)),
        INVALID,
        "interactive.action.parameters.display_text",
        "20",
    )


@pytest.mark.parametrize("url", ["ftp://x.test/a", "javascript:alert(1)", "https://", "x.test"])
def test_cta_url_must_be_http(url: str) -> None:
    fails(body("interactive", cta(url=url)), INVALID, "interactive.action.parameters.url")


def test_cta_url_action_name() -> None:
    b = cta()
    b["action"]["name"] = "open"
    fails(body("interactive", b), INVALID, "interactive.action.name")


def test_location_request() -> None:
    b: dict[str, Any] = {
        "type": "location_request_message",
        "body": {"text": "x" * 1024},
        "action": {"name": "send_location"},
    }
    assert ok(body("interactive", b)).interactive_type == "location_request_message"
    b["body"]["text"] = "x" * 1025
    fails(body("interactive", b), INVALID, "interactive.body.text", "1024")
    b["body"]["text"] = "where are you?"
    b["action"]["name"] = "send_address"
    fails(body("interactive", b), INVALID, "interactive.action.name")


# --- read receipts ----------------------------------------------------------------------------


def test_read_receipt() -> None:
    parsed = wire.parse_messages_request(
        {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.1"}
    )
    assert isinstance(parsed, wire.ReadRequest)
    assert parsed.typing_indicator is False
    fails(
        {"messaging_product": "whatsapp", "status": "read"},
        MISSING,
        "The parameter message_id is required.",
    )
    fails(
        {"messaging_product": "whatsapp", "status": "delivered", "message_id": "w"},
        INVALID,
        "status",
    )
    fails(
        {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": "w",
            "typing_indicator": {"type": "audio"},
        },
        INVALID,
        "typing_indicator.type",
    )


# --- lenient inputs (Appendix) ----------------------------------------------------------------


def test_recipient_type_missing_and_preview_url_defaults() -> None:
    msg = ok(body("text", {"body": "hi"}))
    assert msg.recipient_type == "individual"
    assert msg.payload == {"body": "hi", "preview_url": False}
    assert ok(body("text", {"body": "hi", "preview_url": True})).payload["preview_url"] is True
    assert ok(body("text", {"body": "hi", "preview_url": None})).payload["preview_url"] is False
    assert ok(body("text", {"body": "hi"}, recipient_type="INDIVIDUAL")).recipient_type == (
        "individual"
    )


def test_empty_caption_is_accepted_and_dropped() -> None:
    assert ok(body("image", {"id": "1", "caption": ""})).payload == {"id": "1"}


def test_template_is_parsed_loosely() -> None:
    msg = ok(
        body(
            "template",
            {
                "name": "order_update",
                "language": {"code": None, "policy": "deterministic"},
                "components": [
                    {"type": "BODY", "parameters": [{"type": "text", "text": "Ann"}]},
                    {"type": "Button", "sub_type": "QUICK_REPLY", "index": 0, "parameters": []},
                ],
            },
        )
    )
    assert msg.payload["language"] == {"policy": "deterministic"}
    assert [c["type"] for c in msg.payload["components"]] == ["body", "button"]
    assert msg.payload["components"][1]["sub_type"] == "quick_reply"
    assert msg.payload["components"][1]["index"] == "0"
    assert ok(body("template", {"name": "x", "language": {"code": "en"}, "components": []}))
    fails(body("template", {"language": {"code": "en"}}), MISSING, "template.name")
    fails(body("template", {"name": "x"}), MISSING, "template.language")


@pytest.mark.parametrize(
    ("to", "candidate"),
    [
        ("+1 (650) 555-1234", "+16505551234"),
        ("1-650-555-1234", "+16505551234"),
        ("16505551234", "+16505551234"),
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_to_formatting_is_kept_as_input(to: str, candidate: str) -> None:
    msg = ok(body("text", {"body": "hi"}, to=to))
    assert msg.to_input == to
    assert wire.candidate_e164(msg.to_input) == candidate


def test_to_as_a_number() -> None:
    assert ok(body("text", {"body": "hi"}, to=16505551234)).to_input == "16505551234"


def test_recipient_e164() -> None:
    assert wire.recipient_e164("+1 (555) 010-0001") == "+15550100001"
    with pytest.raises(GraphError) as info:
        wire.recipient_e164("{{Recipient-Phone-Number}}")
    assert info.value.graph_code == INVALID
    assert "Param to" in info.value.graph_details


def test_unknown_top_level_keys_are_ignored() -> None:
    assert ok(body("text", {"body": "hi"}, preview_url=True, foo=1)).type == "text"


def test_payload_is_plain_json() -> None:
    msg = ok(body("interactive", buttons(2)))
    assert msg.payload == buttons(2)
