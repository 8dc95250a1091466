"""The send, `POST /vNN.N/{digits}/messages`, is served in front of FastAPI (send_path.py). It
must answer exactly as the routed forms of the same endpoint do (unversioned, which FastAPI
still serves): the same statuses, Graph envelopes and headers, for good and bad requests."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from business_support import provision_shop

from conftest import serving
from tidings.business_api.send_path import send_params

CUSTOMER = "+15550100001"

TEXT = {"messaging_product": "whatsapp", "to": CUSTOMER, "type": "text", "text": {"body": "hi"}}

# (name, body): each refused at once, storing nothing.
BAD: list[tuple[str, bytes]] = [
    ("not json", b"{not json"),
    ("not an object", b"[1, 2]"),
    ("no type", b'{"messaging_product": "whatsapp", "to": "+15550100001"}'),
    ("unknown type", b'{"messaging_product":"whatsapp","to":"+15550100001","type":"pigeon"}'),
    ("bad number", b'{"messaging_product":"whatsapp","to":"12","type":"text","text":{"body":"x"}}'),
    ("to itself", httpx.Request("POST", "/", json={**TEXT, "to": "+15550109999"}).read()),
]


@pytest.fixture
def shop(settings, clock):
    made = provision_shop(settings)
    with serving(settings, clock) as server:
        yield made, server


def post(server: Any, path: str, token: str | None, body: bytes, **headers: str) -> httpx.Response:
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    headers.setdefault("content-type", "application/json")
    return httpx.post(f"{server.url}{path}", content=body, headers=headers)


def answer(response: httpx.Response) -> tuple[int, Any, str | None]:
    body = response.json()
    if "error" in body:
        body["error"].pop("fbtrace_id", None)
    return response.status_code, body, response.headers.get("retry-after")


@pytest.mark.parametrize(("name", "body"), BAD, ids=[case[0] for case in BAD])
def test_bad_sends_answer_as_the_routed_endpoint_does(shop, name, body) -> None:
    made, server = shop
    path = f"/v23.0/{made.phone_number_id}/messages"
    assert send_params({"type": "http", "method": "POST", "path": path}) is not None  # in front
    assert send_params({"type": "http", "method": "POST", "path": path[6:]}) is None  # routed
    fast = post(server, path, made.access_token, body)
    routed = post(server, f"/{made.phone_number_id}/messages", made.access_token, body)
    assert fast.status_code >= 400, name
    assert answer(fast) == answer(routed)
    assert "error" in fast.json() and fast.json()["error"]["fbtrace_id"]


def test_a_send_is_answered_alike_on_both_paths(shop) -> None:
    made, server = shop
    body = httpx.Request("POST", "/", json=TEXT).read()  # outside the window: failed later
    fast = post(server, f"/v23.0/{made.phone_number_id}/messages", made.access_token, body)
    routed = post(server, f"/{made.phone_number_id}/messages", made.access_token, body)
    assert fast.status_code == routed.status_code == 200
    assert fast.headers["content-type"] == routed.headers["content-type"]
    for answered in (fast.json(), routed.json()):
        assert answered["contacts"] == [{"input": CUSTOMER, "wa_id": CUSTOMER.lstrip("+")}]
        assert answered["messages"][0]["id"].startswith("wamid.")
    assert fast.json()["messages"][0]["id"] != routed.json()["messages"][0]["id"]


def test_credentials_are_checked_first_on_the_send_path(shop) -> None:
    made, server = shop
    path = f"/v23.0/{made.phone_number_id}/messages"
    for token in (None, "not-a-token"):
        fast = post(server, path, token, b"{not json")
        routed = post(server, f"/{made.phone_number_id}/messages", token, b"{not json")
        assert fast.status_code == 401
        assert answer(fast) == answer(routed)
        assert fast.json()["error"]["code"] == 190
    other = provision_shop(server.settings, phone="+15550108888", name="Other")
    stranger = post(server, path, other.access_token, b"{}")
    assert stranger.status_code in (400, 404) and stranger.json()["error"]["code"] == 100


def test_an_oversized_send_is_refused_before_its_body_is_read(shop) -> None:
    made, server = shop
    limit = server.settings.server.max_request_bytes
    big = b'{"pad": "' + b"x" * limit + b'"}'
    fast = post(server, f"/v23.0/{made.phone_number_id}/messages", made.access_token, big)
    routed = post(server, f"/{made.phone_number_id}/messages", made.access_token, big)
    assert fast.status_code == 413
    assert answer(fast) == answer(routed)
    assert fast.json()["error"]["code"] == 100
