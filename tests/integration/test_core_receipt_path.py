"""Receipts, `POST /v1/receipts`, are served in front of FastAPI (mailbox/receipt_path.py). They
must answer exactly as FastAPI's route does: the same statuses, bodies and headers, for good
and bad requests, and file the same notices."""

from __future__ import annotations

import asyncio
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


async def test_receipts_arriving_together_are_each_filed_or_refused_on_their_own(
    local, people
) -> None:
    """Receipts that arrive in one turn of the loop share a unit of work (db/batches.py):
    each still gets its own answer, and a refused one files nothing."""
    alice, bob = people
    fast, _routed = apps(local)
    before = await receipts_in(local)
    unknown = GOOD.replace(ALICE.encode(), NOBODY.encode())
    read_by_alice = b'{"to": "+15550100002", "type": "read", "message_ids": ["m-2", "m-3"]}'
    got = await asyncio.gather(
        post(fast, bob.token, GOOD, "application/json"),
        post(fast, bob.token, unknown, "application/json"),
        post(fast, alice.token, read_by_alice, "application/json"),
    )
    assert [r.status_code for r in got] == [200, 404, 200]
    assert got[0].json() == {"filed": 2}  # Alice's primary and companion
    assert "error" in got[1].json()
    assert got[2].json() == {"filed": 2}  # Bob's primary, and Alice's companion (a read)
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


def sent_to(sent: list[dict[str, Any]]) -> Any:
    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    return send


async def test_a_client_gone_before_its_body_arrived_is_let_go_without_an_error(
    local, people, caplog: pytest.LogCaptureFixture
) -> None:
    """A device whose request timed out disconnects while the request waits its turn: the
    body's read finds the disconnect. Nothing is filed and nothing logged as a crash."""
    alice, _bob = people
    before = await receipts_in(local)
    for app in apps(local):
        sent: list[dict[str, Any]] = []
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/receipts",
            "raw_path": b"/v1/receipts",
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"authorization", f"Bearer {alice.token}".encode()),
                (b"content-type", b"application/json"),
                (b"host", b"t"),
            ],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.disconnect"}

        with caplog.at_level("ERROR"):
            await app(scope, receive, sent_to(sent))
        assert [r for r in caplog.records if r.levelname == "ERROR"] == []
        # In front, nothing is answered; FastAPI answers its "error parsing the body" 400.
        expected = [] if app.fast_paths else [400]
        assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == expected
    assert await receipts_in(local) == before


async def test_acks_arriving_together_each_delete_their_own_devices_envelopes(
    local, people
) -> None:
    """Acks that arrive in one turn share a unit of work (db/batches.py); each deletes only
    envelopes of its own device's mailbox and is answered with its own count."""
    alice, bob = people
    fast, _routed = apps(local)
    read_by_alice = b'{"to": "+15550100002", "type": "read", "message_ids": ["m-2"]}'
    assert (await post(fast, bob.token, GOOD, "application/json")).status_code == 200
    assert (await post(fast, alice.token, read_by_alice, "application/json")).status_code == 200
    alice_device = await local.devices.authenticate(alice.token)
    bob_device = await local.devices.authenticate(bob.token)
    alice_seqs = [e.seq for e in (await local.mailbox.fetch(alice_device, 0)).envelopes]
    bob_seqs = [e.seq for e in (await local.mailbox.fetch(bob_device, 0)).envelopes]
    assert alice_seqs and bob_seqs
    deleted = await asyncio.gather(
        local.mailbox.ack(alice_device, alice_seqs),
        local.mailbox.ack(bob_device, [max(alice_seqs + bob_seqs) + 100]),
        local.mailbox.ack(bob_device, bob_seqs),
    )
    assert deleted == [len(alice_seqs), 0, len(bob_seqs)]
    assert (await local.mailbox.fetch(alice_device, 0)).envelopes == []
    assert (await local.mailbox.fetch(bob_device, 0)).envelopes == []
