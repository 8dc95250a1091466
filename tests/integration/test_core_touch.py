"""Last-seen writes: a device that syncs often does not queue for the writer every time."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from core_helpers import register

ALICE = "+15550100001"


def test_a_device_touched_within_the_hour_costs_no_transaction(server, invite) -> None:
    database = server.runtime.database
    real = database.unit_of_work
    opened: list[str] = []

    @contextlib.asynccontextmanager
    async def counted() -> AsyncIterator[object]:
        opened.append("uow")
        async with real() as uow:
            yield uow

    with httpx.Client(base_url=server.url) as client:
        alice = register(client, ALICE, invite(ALICE))
        database.unit_of_work = counted  # a spy on the real database, from here on
        try:
            assert client.get("/v1/mailbox", headers=alice.headers).status_code == 200
            first = len(opened)
            server.clock.advance(minutes=59)
            assert client.get("/v1/mailbox", headers=alice.headers).status_code == 200
            assert len(opened) == first  # read only: touched less than an hour ago
            server.clock.advance(minutes=2)
            assert client.get("/v1/mailbox", headers=alice.headers).status_code == 200
            assert len(opened) == first + 1  # an hour on, last-seen is written again
        finally:
            del database.unit_of_work
        devices = client.get(f"/v1/accounts/{ALICE}/devices", headers=alice.headers).json()
        assert devices["devices"][0]["last_seen_at"] is not None
