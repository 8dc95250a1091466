"""Meta's Graph error envelope, codes and HTTP statuses; response and status-webhook shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, Field, ValidationError

from tidings.business_api import wire
from tidings.business_api.graph_errors import (
    ERROR_CODES_HREF,
    GraphCode,
    GraphError,
    async_error,
    format_loc,
    graph_envelope,
    graph_error_from_validation,
    http_status_for,
    map_any_app_error,
)
from tidings.errors import (
    AppError,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from tidings.protocol.codes import ErrorCode


def test_envelope_matches_metas_example_exactly() -> None:
    err = GraphError(130429, "Cloud API message throughput has been reached.", subcode=2494055)
    assert graph_envelope(err, "Az8or2yhqkZfEZ-_4Qn_Bam") == {
        "error": {
            "message": "(#130429) Rate limit hit",
            "type": "OAuthException",
            "code": 130429,
            "error_data": {
                "messaging_product": "whatsapp",
                "details": "Cloud API message throughput has been reached.",
            },
            "error_subcode": 2494055,
            "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam",
        }
    }


def test_envelope_without_subcode_has_no_subcode_key() -> None:
    body = graph_envelope(GraphError(100, "Param text.body is bad."), "T")["error"]
    assert set(body) == {"message", "type", "code", "error_data", "fbtrace_id"}
    assert body["message"] == "(#100) Invalid parameter"


@pytest.mark.parametrize(
    ("code", "status", "title"),
    [
        (0, 401, "AuthException"),
        (190, 401, "Access token has expired"),
        (10, 403, "Permission Denied"),
        (200, 403, "API Permission"),
        (250, 403, "API Permission"),
        (299, 403, "API Permission"),
        (100, 400, "Invalid parameter"),
        (80007, 400, "Rate limit issues"),
        (130429, 400, "Rate limit hit"),
        (131000, 500, "Something went wrong"),
        (131008, 400, "Required parameter is missing"),
        (131009, 400, "Parameter value is not valid"),
        (131026, 400, "Message undeliverable"),
        (131047, 400, "Re-engagement message"),
        (131051, 400, "Unsupported message type"),
        (131053, 400, "Media upload error"),
        (131056, 400, "(Business, Consumer) pair rate limit hit"),
        (132000, 400, "Number of parameters does not match the expected number of params"),
        (132001, 404, "Template name does not exist in the translation"),
        (133004, 503, "Server temporarily unavailable"),
    ],
)
def test_codes_titles_and_http_statuses(code: int, status: int, title: str) -> None:
    err = GraphError(code, "d")
    assert (err.graph_code, err.http_status, err.status, err.title) == (code, status, status, title)
    assert err.message == f"(#{code}) {title}"
    assert http_status_for(code) == status


def test_unknown_code_defaults_and_overrides() -> None:
    err = GraphError(987654, "d")
    assert (err.http_status, err.title) == (400, "Unknown error")
    custom = GraphError(190, "d", title="Invalid OAuth access token", http_status=401)
    assert custom.title == "Invalid OAuth access token"


def test_graph_error_is_an_app_error_with_a_core_code() -> None:
    err = GraphError(GraphCode.THROUGHPUT_RATE_LIMIT, "slow down")
    assert isinstance(err, AppError)
    assert err.code == ErrorCode.RATE_LIMITED
    assert err.details == {"graph_code": 130429, "details": "slow down"}
    assert GraphError(190, "x").code == ErrorCode.UNAUTHORIZED
    assert GraphError(10, "x").code == ErrorCode.FORBIDDEN
    assert GraphError(132001, "x").code == ErrorCode.NOT_FOUND
    assert GraphError(131000, "x").code == ErrorCode.INTERNAL
    assert GraphError(100, "x").code == ErrorCode.VALIDATION_FAILED


def test_async_error_shape() -> None:
    assert async_error(131047, "More than 24 hours have passed.") == {
        "code": 131047,
        "title": "Re-engagement message",
        "message": "Re-engagement message",
        "error_data": {"details": "More than 24 hours have passed."},
        "href": ERROR_CODES_HREF,
    }
    assert async_error(131051, "x", title="Message type unknown")["message"] == (
        "Message type unknown"
    )


@pytest.mark.parametrize(
    ("err", "code", "status"),
    [
        (Unauthorized("bad token"), 190, 401),
        (Forbidden("no scope"), 10, 403),
        (NotFound("no such phone number"), 100, 400),
        (RateLimited("slow", retry_after=3), 80007, 400),
        (ValidationFailed("bad"), 100, 400),
        (Conflict("state"), 100, 400),
        (PayloadTooLarge("big"), 100, 400),
        (AppError("boom", code=ErrorCode.INTERNAL, status=500), 131000, 500),
    ],
)
def test_map_any_app_error(err: AppError, code: int, status: int) -> None:
    graph = map_any_app_error(err)
    assert (graph.graph_code, graph.http_status) == (code, status)
    assert graph.graph_details


def test_map_not_found_uses_subcode_33_and_metas_sentence() -> None:
    graph = map_any_app_error(NotFound("nope", details={"id": "1234"}))
    assert graph.subcode == 33
    assert "Object with ID '1234' does not exist" in graph.graph_details
    assert graph_envelope(graph, "t")["error"]["error_subcode"] == 33


def test_map_unauthorized_uses_metas_invalid_token_title() -> None:
    graph = map_any_app_error(Unauthorized("bad token"))
    assert graph.title == "Invalid OAuth access token - Cannot parse access token"


def test_map_passes_graph_errors_through() -> None:
    err = GraphError(131056, "pair")
    assert map_any_app_error(err) is err


class _Inner(BaseModel):
    title: str = Field(max_length=3)


class _Outer(BaseModel):
    items: list[_Inner]


def test_graph_error_from_validation_names_the_path() -> None:
    with pytest.raises(ValidationError) as info:
        _Outer.model_validate({"items": [{"title": "ok"}, {"title": "long"}]})
    err = graph_error_from_validation(info.value, prefix=("x",))
    assert err.graph_code == 100
    assert err.graph_details == "Param x.items[1].title must be at most 3 characters long."
    with pytest.raises(ValidationError) as info:
        _Outer.model_validate({"items": [{}]})
    err = graph_error_from_validation(info.value)
    assert (err.graph_code, err.graph_details) == (
        131008,
        "The parameter items[0].title is required.",
    )


def test_format_loc() -> None:
    assert format_loc(("a", "b", 0, "c", 2)) == "a.b[0].c[2]"
    assert format_loc(()) == ""


# --- responses and status webhooks ------------------------------------------------------------


def test_send_response_shape() -> None:
    assert wire.send_response("+1 (650) 555-1234", "+16505551234", "wamid.X") == {
        "messaging_product": "whatsapp",
        "contacts": [{"input": "+1 (650) 555-1234", "wa_id": "16505551234"}],
        "messages": [{"id": "wamid.X"}],
    }
    paced = wire.send_response("1", "1", "wamid.Y", message_status="accepted")
    assert paced["messages"] == [{"id": "wamid.Y", "message_status": "accepted"}]


def test_success_body() -> None:
    assert wire.SUCCESS == {"success": True}
    fresh = wire.success()
    assert fresh == wire.SUCCESS and fresh is not wire.SUCCESS


def test_status_object_and_value() -> None:
    when = datetime(2025, 6, 9, 12, 0, 0, tzinfo=UTC)
    status = wire.status_object(
        "wamid.1",
        "failed",
        when,
        "+16505551234",
        biz_opaque_callback_data="cb",
        errors=[async_error(131047, "24h")],
    )
    assert status == {
        "id": "wamid.1",
        "status": "failed",
        "timestamp": str(int(when.timestamp())),
        "recipient_id": "16505551234",
        "biz_opaque_callback_data": "cb",
        "errors": [async_error(131047, "24h")],
    }
    plain = wire.status_object("wamid.2", "read", 1749416383.9, "16505551234")
    assert plain == {
        "id": "wamid.2",
        "status": "read",
        "timestamp": "1749416383",
        "recipient_id": "16505551234",
    }
    pricing = {"billable": False, "pricing_model": "PMP", "type": "free_customer_service"}
    delivered = wire.status_object(
        "wamid.3",
        "delivered",
        1,
        "1",
        conversation={"id": "c", "origin": {"type": "service"}},
        pricing=pricing,
    )
    assert delivered["pricing"] == pricing and delivered["conversation"]["id"] == "c"

    value = wire.status_value(
        phone_number_id="106540352242922",
        display_phone_number="+15550783881",
        status=plain,
        wa_id="+16505551234",
        user_id="US.abc",
    )
    assert value == {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "contacts": [{"wa_id": "16505551234", "user_id": "US.abc"}],
        "statuses": [plain],
    }
    wrapped = wire.envelope("419561257915477", "messages", value)
    assert wrapped == {
        "object": "whatsapp_business_account",
        "entry": [{"id": "419561257915477", "changes": [{"value": value, "field": "messages"}]}],
    }
    assert wire.envelope("w", "account_update", {}, time=when)["entry"][0]["time"] == int(
        when.timestamp()
    )


def test_inbound_media_and_location_optional_fields() -> None:
    common: dict[str, Any] = {"from_wa_id": "+16505551234", "message_id": "wamid.1", "timestamp": 5}
    audio = wire.inbound_media(
        "audio", media_id="m", mime_type="audio/ogg; codecs=opus", sha256="h", voice=True, **common
    )
    assert audio == {
        "from": "16505551234",
        "id": "wamid.1",
        "timestamp": "5",
        "type": "audio",
        "audio": {"id": "m", "mime_type": "audio/ogg; codecs=opus", "sha256": "h", "voice": True},
    }
    doc = wire.inbound_media(
        "document",
        media_id="m",
        mime_type="application/pdf",
        sha256="h",
        filename="a.pdf",
        **common,
    )
    assert doc["document"]["filename"] == "a.pdf"
    loc = wire.inbound_location(
        latitude=1.5, longitude=2.5, context=wire.message_context("+1555", "wamid.0"), **common
    )
    assert loc["location"] == {"latitude": 1.5, "longitude": 2.5}
    assert loc["context"] == {"from": "1555", "id": "wamid.0"}
