"""The claim's in-order rule read from the delivery rows' own positions: what a delivery row
carries, how a waiting delivery holds back its target's later ones (and no other target's),
the index both order checks read, and migration 0011's backfill of existing rows."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from test_webhooks_helpers import (
    PHONE,
    SECRET,
    WABA,
    Harness,
    Receiver,
    enqueue,
    harness,
    receiver,
    subscribe,
)

from tidings.db.base import UTCDateTime
from tidings.db.engine import make_engine
from tidings.db.migrate import alembic_config, upgrade
from tidings.webhooks.models import WebhookDelivery, WebhookEvent
from tidings.webhooks.repository import (
    _CLAIM_FOLLOWERS,
    _CLAIM_HEADS,
    WebhookRepository,
)

__all__ = ["harness", "receiver"]  # fixtures

OTHER_WABA = "waba-300"
WAITING_ORDER_INDEX = "ix_webhook_deliveries_waiting_order"


async def enqueue_to(harness: Harness, waba_id: str, count: int) -> list[str]:
    async with harness.database.unit_of_work() as uow:
        return await harness.service.enqueue_many(
            uow,
            waba_id=waba_id,
            phone_number_id=PHONE,
            field="messages",
            values=[{"n": n} for n in range(count)],
        )


async def claim(harness: Harness, token: str) -> list[tuple[str, str, str]]:
    """(WABA, target URL, event id) of everything one claim leases, in the claim's order."""
    now = harness.clock.now()
    async with harness.database.unit_of_work() as uow:
        claimed = await WebhookRepository(uow.session).claim_due(
            now, now + harness.service.dispatcher.lease, token, 100
        )
    return [(c.waba_id, c.target_url, c.event_id) for c in claimed]


async def delivery_rows(harness: Harness) -> list[tuple[int, str, str, int, int]]:
    """(delivery id, target URL, event id, the delivery's position, the event's position)."""
    async with harness.database.read_only() as uow:
        rows = await uow.session.execute(
            sa.select(
                WebhookDelivery.id,
                WebhookDelivery.target_url,
                WebhookDelivery.event_id,
                WebhookDelivery.position,
                WebhookEvent.position,
            )
            .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
            .order_by(WebhookDelivery.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def put_back(harness: Harness, event_id: str, target_url: str, seconds: int) -> None:
    """Make a delivery wait `seconds`, as a failed attempt leaves it."""
    async with harness.database.unit_of_work() as uow:
        row = await uow.session.scalar(
            sa.select(WebhookDelivery).where(
                WebhookDelivery.event_id == event_id, WebhookDelivery.target_url == target_url
            )
        )
        assert row is not None
        row.attempts = 1
        row.next_attempt_at = harness.clock.now() + timedelta(seconds=seconds)


async def test_a_delivery_carries_its_events_position_also_when_replayed(
    harness: Harness, receiver: Receiver
) -> None:
    await subscribe(harness, receiver)
    first = await enqueue_to(harness, WABA, 3)
    await enqueue(harness, {"n": 3})
    # Replayed to a new callback URL, the events get new delivery rows, written by the replay.
    await harness.service.set_app_callback(receiver.url("/moved"), receiver.verify_token)
    assert await harness.service.replay(WABA, event_ids=first) == 3

    rows = await delivery_rows(harness)
    assert len(rows) == 7
    assert [row[3] for row in rows] == [row[4] for row in rows]
    moved = [(row[2], row[3]) for row in rows if row[1].endswith("/moved")]
    assert moved == [(event_id, position) for position, event_id in enumerate(first, 1)]


async def test_a_retried_delivery_holds_back_its_targets_later_ones_and_no_other_target(
    harness: Harness, receiver: Receiver
) -> None:
    await subscribe(harness, receiver)
    await harness.service.subscribe_app(OTHER_WABA)
    harness.secrets[OTHER_WABA] = SECRET
    url = receiver.url()
    # Each WABA numbers its events from 1, so one URL's positions overlap across them: the
    # other WABA's waiting events (2 and 3) come after our first (1), yet do not wait for it.
    await enqueue_to(harness, OTHER_WABA, 1)
    assert await harness.run() == 1
    ours = await enqueue_to(harness, WABA, 3)
    theirs = await enqueue_to(harness, OTHER_WABA, 2)
    await put_back(harness, ours[0], url, seconds=10)

    assert await claim(harness, "first") == [(OTHER_WABA, url, e) for e in theirs]
    assert await claim(harness, "second") == []  # ours wait behind our first event
    harness.clock.advance(seconds=10)
    assert await claim(harness, "third") == [(WABA, url, e) for e in ours]


async def test_a_target_takes_its_events_by_position_not_by_row_order(
    harness: Harness, receiver: Receiver
) -> None:
    await subscribe(harness, receiver)
    events = await enqueue_to(harness, WABA, 3)
    for event_id in events:  # out of the way: only the moved target's rows matter here
        await put_back(harness, event_id, receiver.url(), seconds=3600)
    moved = receiver.url("/moved")
    await harness.service.set_app_callback(moved, receiver.verify_token)
    [fourth] = await enqueue_to(harness, WABA, 1)
    # Replayed after the fourth, the first three get later rows but earlier positions.
    assert await harness.service.replay(WABA, event_ids=events) == 3
    await put_back(harness, events[2], moved, seconds=10)

    # The run starts at the first position and stops at the third, which is not due; the
    # fourth, written first, waits behind it.
    assert await harness.run() == 2
    harness.clock.advance(seconds=10)
    assert await harness.run() == 2
    sent = [post.headers["x-tidings-event-id"] for post in receiver.posts("/moved")]
    assert sent == [*events, fourth]


async def test_both_order_checks_read_the_waiting_order_index(database_url: str) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            postgresql = connection.dialect.name == "postgresql"
            if postgresql:  # empty tables: without this, scanning them is cheapest
                await connection.exec_driver_sql("SET enable_seqscan = off")
            explain = "EXPLAIN " if postgresql else "EXPLAIN QUERY PLAN "
            values = {"now": now, "limit": 100, "waba_id": WABA, "target_url": "u"}
            values |= {"position": 1, "room": 100}
            for statement in (_CLAIM_HEADS, _CLAIM_FOLLOWERS):
                compiled = statement.compile(dialect=connection.dialect)
                parameters = compiled.construct_params(values)
                arguments = tuple(
                    parameters[name] if postgresql or name != "now" else now.isoformat(" ")
                    for name in compiled.positiontup or ()
                )
                result = await connection.exec_driver_sql(explain + str(compiled), arguments)
                plan = "\n".join(str(row[-1]) for row in result)
                assert WAITING_ORDER_INDEX in plan, plan
    finally:
        await engine.dispose()


# -- migration 0011 --------------------------------------------------------------------------

PG_ADMIN = os.environ.get(
    "TIDINGS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
).replace("postgresql://", "postgresql+asyncpg://")


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all, for migrating step by step."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrating.db'}"
        return
    name = f"tidings_migrating_{uuid.uuid4().hex[:12]}"
    asyncio.run(query(PG_ADMIN, f'CREATE DATABASE "{name}"', autocommit=True))
    try:
        yield f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    finally:
        sql = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        asyncio.run(query(PG_ADMIN, sql, autocommit=True))


# The tables as revision 0010 has them (no position on deliveries).
_events_0010 = sa.table(
    "webhook_events",
    sa.column("id"),
    sa.column("waba_id"),
    sa.column("position"),
    sa.column("field"),
    sa.column("body_sealed"),
    sa.column("created_at", UTCDateTime()),
)
_deliveries_0010 = sa.table(
    "webhook_deliveries",
    sa.column("event_id"),
    sa.column("waba_id"),
    sa.column("target_url"),
    sa.column("status"),
    sa.column("attempts"),
    sa.column("next_attempt_at", UTCDateTime()),
    sa.column("expires_at", UTCDateTime()),
    sa.column("created_at", UTCDateTime()),
)


def test_migration_0011_copies_each_deliverys_event_position(empty_database_url: str) -> None:
    url = empty_database_url
    now = datetime(2026, 1, 1, tzinfo=UTC)
    # Two WABAs with overlapping positions, deliveries written out of position order.
    events = [("a3", "waba-a", 3), ("a1", "waba-a", 1), ("b1", "waba-b", 1), ("a2", "waba-a", 2)]
    deliveries = [
        ("a3", "waba-a", "https://a/1", "delivered"),
        ("a1", "waba-a", "https://a/1", "pending"),
        ("a1", "waba-a", "https://a/2", "dead"),
        ("b1", "waba-b", "https://b/1", "delivering"),
        ("a2", "waba-a", "https://a/1", "pending"),
    ]

    async def fill() -> None:
        engine = make_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    sa.insert(_events_0010),
                    [
                        {
                            "id": event_id,
                            "waba_id": waba_id,
                            "position": position,
                            "field": "messages",
                            "body_sealed": b"sealed",
                            "created_at": now,
                        }
                        for event_id, waba_id, position in events
                    ],
                )
                await connection.execute(
                    sa.insert(_deliveries_0010),
                    [
                        {
                            "event_id": event_id,
                            "waba_id": waba_id,
                            "target_url": target_url,
                            "status": status,
                            "attempts": 0,
                            "next_attempt_at": now,
                            "expires_at": now,
                            "created_at": now,
                        }
                        for event_id, waba_id, target_url, status in deliveries
                    ],
                )
        finally:
            await engine.dispose()

    upgrade(url, "0010")
    asyncio.run(fill())
    upgrade(url, "0011")
    positions = asyncio.run(
        query(url, "SELECT event_id, target_url, position FROM webhook_deliveries ORDER BY id")
    )
    assert positions == [
        ("a3", "https://a/1", 3),
        ("a1", "https://a/1", 1),
        ("a1", "https://a/2", 1),
        ("b1", "https://b/1", 1),
        ("a2", "https://a/1", 2),
    ]
    nullable, indexes = asyncio.run(delivery_schema(url))
    assert nullable["position"] is False
    assert {WAITING_ORDER_INDEX, "ix_webhook_deliveries_target_waiting"} <= indexes

    command.downgrade(alembic_config(url), "0010")
    nullable, indexes = asyncio.run(delivery_schema(url))
    assert "position" not in nullable
    assert WAITING_ORDER_INDEX not in indexes
    assert len(asyncio.run(query(url, "SELECT id FROM webhook_deliveries"))) == len(deliveries)


async def query(url: str, sql: str, autocommit: bool = False) -> list[tuple[object, ...]]:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            if autocommit:  # CREATE and DROP DATABASE refuse to run in a transaction
                await connection.execution_options(isolation_level="AUTOCOMMIT")
            result = await connection.execute(sa.text(sql))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        await engine.dispose()


async def delivery_schema(url: str) -> tuple[dict[str, bool], set[str]]:
    """Which columns of webhook_deliveries are nullable, and the names of its indexes."""

    def read(sync: sa.Connection) -> tuple[dict[str, bool], set[str]]:
        inspector = sa.inspect(sync)
        columns = inspector.get_columns("webhook_deliveries")
        indexes = inspector.get_indexes("webhook_deliveries")
        return {c["name"]: bool(c["nullable"]) for c in columns}, {str(i["name"]) for i in indexes}

    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(read)
    finally:
        await engine.dispose()
