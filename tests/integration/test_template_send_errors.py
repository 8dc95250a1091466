"""Every template error a send can get, from a real request, in Meta's Graph envelope, with
nothing stored or delivered: 132000, 132001, 132005, 132007, 132012, 132015, 132016 (and the
131xxx answers for malformed components and unusable media)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import template_send_support
from openapi_support import check_response, template_of
from template_send_support import (
    ORDER_UPDATE,
    RECEIPT_IMAGE,
    TABLE_BOOKING,
    body_params,
    create_approved,
    send_body,
    set_template_state,
    stored_messages,
)

receiver, shop = template_send_support.receiver, template_send_support.shop  # fixtures

URL_SUFFIX = {
    "type": "button",
    "sub_type": "url",
    "index": "2",
    "parameters": [{"type": "text", "text": "A-1"}],
}


def order(*components: dict[str, Any], header: str = "A-1") -> list[dict[str, Any]]:
    """order_update's components: a good header and URL suffix unless given otherwise."""
    parts = list(components)
    if not any(c["type"] == "header" for c in parts):
        parts.insert(0, {"type": "header", "parameters": [{"type": "text", "text": header}]})
    if not any(c["type"] == "button" for c in parts):
        parts.append(URL_SUFFIX)
    return parts


def currency(**overrides: Any) -> dict[str, Any]:
    value = {"fallback_value": "$5.00", "code": "USD", "amount_1000": 5000} | overrides
    return {"type": "currency", "currency": value}


CASES: list[tuple[str, dict[str, Any], int, int, str]] = [
    # (what, body, HTTP status, Graph code, a phrase of the details)
    ("no such name", send_body("no_such_template", []), 404, 132001, "does not exist in en_US"),
    (
        "not in that language",
        send_body("order_update", order(body_params("Ann", "$5", "today")), language="pt_BR"),
        404,
        132001,
        "does not exist in pt_BR",
    ),
    ("too few body params", send_body("order_update", order(body_params("Ann"))), 400, 132000, ""),
    (
        "too many body params",
        send_body("order_update", order(body_params("Ann", "$5", "today", "extra"))),
        400,
        132000,
        "expected 3 parameters, received 4",
    ),
    (
        "header param missing",
        send_body(
            "order_update",
            order({"type": "header", "parameters": []}, body_params("Ann", "$5", "x")),
        ),
        400,
        132000,
        "header",
    ),
    (
        "URL suffix missing",
        send_body(
            "order_update",
            order(
                body_params("Ann", "$5", "today"),
                {"type": "button", "sub_type": "quick_reply", "index": 0, "parameters": []},
            ),
        ),
        400,
        132000,
        "suffix",
    ),
    (
        "text for an IMAGE header",
        send_body(
            "receipt_image",
            [
                {"type": "header", "parameters": [{"type": "text", "text": "hi"}]},
                body_params("A-1"),
            ],
        ),
        400,
        132012,
        "IMAGE",
    ),
    (
        "named values for a positional template",
        send_body(
            "order_update",
            order(
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": v, "parameter_name": n}
                        for n, v in (("a", "1"), ("b", "2"), ("c", "3"))
                    ],
                }
            ),
        ),
        400,
        132012,
        "positional",
    ),
    (
        "positional values for a named template",
        send_body("table_booking", [body_params("Ann", "4")]),
        400,
        132012,
        "parameter_name",
    ),
    (
        "a name the template lacks",
        send_body(
            "table_booking",
            [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Ann", "parameter_name": "first_name"},
                        {"type": "text", "text": "4", "parameter_name": "guests"},
                    ],
                }
            ],
        ),
        400,
        132012,
        "guests",
    ),
    (
        "bad currency code",
        send_body("order_update", order(body_params("Ann", currency(code="dollars"), "x"))),
        400,
        132012,
        "ISO 4217",
    ),
    (
        "currency without fallback",
        send_body("order_update", order(body_params("Ann", currency(fallback_value=""), "x"))),
        400,
        132012,
        "fallback_value",
    ),
    (
        "date_time without fallback",
        send_body(
            "order_update",
            order(body_params("Ann", "$5", {"type": "date_time", "date_time": {"year": 2026}})),
        ),
        400,
        132012,
        "date_time.fallback_value",
    ),
    (
        "body over 1024 once rendered",
        send_body("order_update", order(body_params("A" * 1000, "$5", "today"))),
        400,
        132005,
        "1024",
    ),
    (
        "header over 60 once rendered",
        send_body("order_update", order(body_params("Ann", "$5", "x"), header="H" * 60)),
        400,
        132005,
        "60",
    ),
    (
        "newline in a parameter",
        send_body("order_update", order(body_params("Ann\nSmith", "$5", "today"))),
        400,
        132007,
        "newlines",
    ),
    (
        "tab in a parameter",
        send_body("order_update", order(body_params("Ann", "$5", "to\tday"))),
        400,
        132007,
        "tabs",
    ),
    (
        "five spaces in a parameter",
        send_body("order_update", order(body_params("Ann     Smith", "$5", "today"))),
        400,
        132007,
        "consecutive spaces",
    ),
    (
        "a button index the template lacks",
        send_body(
            "order_update",
            order(
                body_params("Ann", "$5", "today"),
                URL_SUFFIX,
                {"type": "button", "sub_type": "quick_reply", "index": 7, "parameters": []},
            ),
        ),
        400,
        131009,
        "no such button",
    ),
    (
        "image header naming media nobody uploaded",
        send_body(
            "receipt_image",
            [
                {"type": "header", "parameters": [{"type": "image", "image": {"id": "4242"}}]},
                body_params("A-1"),
            ],
        ),
        400,
        131053,
        "4242",
    ),
]


def test_every_error_code_from_a_real_request(shop, settings) -> None:
    made, _server, graph = shop
    order_id = create_approved(graph, made.waba_id, ORDER_UPDATE)
    create_approved(graph, made.waba_id, RECEIPT_IMAGE)
    create_approved(graph, made.waba_id, TABLE_BOOKING)
    url = f"/v23.0/{made.phone_number_id}/messages"
    for what, body, status, code, phrase in CASES:
        response = graph.post(url, json=body)
        assert response.status_code == status, (what, response.text)
        check_response(template_of(url), "post", status, response.json())  # documented
        error = response.json()["error"]
        assert error["code"] == code, (what, error)
        assert error["type"] == "OAuthException"
        assert error["message"].startswith(f"(#{code}) "), (what, error)
        assert phrase in error["error_data"]["details"], (what, error)

    good = order(body_params("Ann", "$5", "today"))
    set_template_state(settings, order_id, status="PAUSED", pause_count=1)
    paused = graph.post(url, json=send_body("order_update", good))
    assert (paused.status_code, paused.json()["error"]["code"]) == (400, 132015)
    set_template_state(settings, order_id, status="DISABLED")
    disabled = graph.post(url, json=send_body("order_update", good))
    assert (disabled.status_code, disabled.json()["error"]["code"]) == (400, 132016)
    set_template_state(settings, order_id, status="REJECTED", approved_version=None)
    rejected = graph.post(url, json=send_body("order_update", good))
    assert (rejected.status_code, rejected.json()["error"]["code"]) == (404, 132001)
    assert "only approved templates" in rejected.json()["error"]["error_data"]["details"]
    # Nothing was stored, so nothing is delivered or reported.
    assert stored_messages(settings) == 0

    set_template_state(settings, order_id, status="APPROVED", approved_version=1)
    sent = graph.post(url, json=send_body("order_update", good))
    assert sent.status_code == 200, sent.text
    check_response(template_of(url), "post", 200, sent.json())
    assert stored_messages(settings) == 1


def test_a_paused_template_is_refused_while_others_send(shop, settings, clock) -> None:
    made, _server, graph = shop
    order_id = create_approved(graph, made.waba_id, ORDER_UPDATE)
    create_approved(graph, made.waba_id, TABLE_BOOKING)
    until = clock.now() + timedelta(hours=3)
    set_template_state(settings, order_id, status="PAUSED", paused_until=until)
    url = f"/{made.phone_number_id}/messages"
    paused = graph.post(url, json=send_body("order_update", order(body_params("A", "B", "C"))))
    assert paused.json()["error"]["code"] == 132015
    assert "paused until" in paused.json()["error"]["error_data"]["details"]
    clock.advance(timedelta(hours=3))  # the pause ends, though nothing has reinstated it yet
    resumed = graph.post(url, json=send_body("order_update", order(body_params("A", "B", "C"))))
    assert resumed.status_code == 200, resumed.text
    named = [
        {
            "type": "body",
            "parameters": [
                {"type": "text", "text": "Ann", "parameter_name": "first_name"},
                {"type": "text", "text": "2", "parameter_name": "party_size"},
            ],
        }
    ]
    assert graph.post(url, json=send_body("table_booking", named)).status_code == 200
