"""Receipts, `POST /v1/receipts`, are served in front of FastAPI (mailbox/receipt_path.py). They
must answer exactly as FastAPI's route does: the same statuses, bodies and headers, for good
and bad requests, and file the same notices."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from core_helpers import link_companion, register
from sqlalchemy import func, select

from tidings.app import TidingsApp, create_app
from tidings.mailbox.models import EnvelopeRow
from tidings.mailbox.receipt_path import is_receipt
from tidings.runtime import Runtime

ALICE, BOB, NOBODY = "+15550100001", "+15550100002", "+15550100009"

GOOD = b'{"to": "+15550100001", "type": "delivered", "message_ids": ["m-1"]}'
# (name, content type, body): each refused, filing nothing.
BAD: list[tuple[str, str | None, bytes]] = [
    ("not json", "application/json", b'{"to": '),
    ("empty", "application/json", b""),
    ("not an object", "application/json", b"[1, 2]"),
    ("no ids", "application/json", b'{"to": "+15550100001", "type": "read", "message_ids": []}'),
    (
        "bad type",
        "application/json",
        b'{"to": "+15550100001", "type": "seen", "message_ids": ["m"]}',
    ),
    ("extra field", "application/json", GOOD[:-1] + b', "x": 1}'),
    ("text", "text/plain", GOOD),
    ("no content type", None, GOOD),
    ("unknown sender", "application/json", GOOD.replace(ALICE.encode(), NOBODY.encode())),
    ("bad number", "application/json", GOOD.replace(ALICE.encode(), b"12")),
]


def apps(local: Runtime) -> tuple[TidingsApp, TidingsApp]:
    """The app as served, and the same app with every request through FastAPI."""
    fast, routed = create_app(local), create_app(local)
    routed.fast_paths = False
    return fast, routed


async def post(
    app: TidingsApp, token: str | None, body: bytes, content_type: str | None
) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    if content_type is not None:
        headers["content-type"] = content_type
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.post("/v1/receipts", content=body, headers=headers)


def answer(response: httpx.Response) -> tuple[int, Any, str | None, str | None]:
    return (
        response.status_code,
        response.json(),
        response.headers.get("content-type"),
        response.headers.get("content-length"),
    )


@pytest.fixture
def people(server, invite) -> tuple[Any, Any]:
    with httpx.Client(base_url=server.url) as client:
        alice = register(client, ALICE, invite(ALICE))
        link_companion(client, alice)
        bob = register(client, BOB, invite(BOB))
    return alice, bob


async def receipts_in(local: Runtime) -> int:
    """Receipt notices in every mailbox."""
    async with local.database.read_only() as uow:
        count = await uow.session.scalar(
            select(func.count()).select_from(EnvelopeRow).where(EnvelopeRow.kind == "receipt")
        )
    return int(count or 0)


async def test_the_receipt_path_is_in_front_and_only_for_posts_to_it() -> None:
    assert is_receipt({"type": "http", "method": "POST", "path": "/v1/receipts"})
    assert not is_receipt({"type": "http", "method": "GET", "path": "/v1/receipts"})
    assert not is_receipt({"type": "http", "method": "POST", "path": "/v1/receipts/"})
    assert not is_receipt({"type": "websocket", "path": "/v1/receipts"})


async def test_a_receipt_is_filed_and_answered_alike_on_both_paths(local, people) -> None:
    _alice, bob = people
    fast, routed = apps(local)
    before = await receipts_in(local)
    got = await post(fast, bob.token, GOOD, "application/json")
    expected = await post(routed, bob.token, GOOD, "application/json; charset=utf-8")
    assert answer(got) == answer(expected)
    assert got.json() == {"filed": 2}  # Alice's primary and companion
    assert await receipts_in(local) == before + 4


@pytest.mark.parametrize(("name", "content_type", "body"), BAD, ids=[case[0] for case in BAD])
async def test_bad_receipts_answer_as_the_routed_endpoint_does(
    local, people, name, content_type, body
) -> None:
    _alice, bob = people
    fast, routed = apps(local)
    before = await receipts_in(local)
    got = await post(fast, bob.token, body, content_type)
    expected = await post(routed, bob.token, body, content_type)
    assert got.status_code >= 400, name
    assert answer(got) == answer(expected)
    assert "error" in got.json()
    assert await receipts_in(local) == before


@pytest.mark.parametrize("token", [None, "not-a-token"])
async def test_credentials_are_refused_alike_on_both_paths(local, people, token) -> None:
    fast, routed = apps(local)
    for body in (GOOD, b"{"):
        got = await post(fast, token, body, "application/json")
        expected = await post(routed, token, body, "application/json")
        assert got.status_code in (400, 401)
        assert answer(got) == answer(expected)


async def test_an_oversized_receipt_is_refused_before_it_is_read(local, people) -> None:
    _alice, bob = people
    fast, _routed = apps(local)
    limit = local.settings.server.max_request_bytes
    body = GOOD[:-1] + b', "pad": "' + b"x" * limit + b'"}'
    got = await post(fast, bob.token, body, "application/json")
    assert got.status_code == 413
    assert got.json()["error"]["code"]
