"""The events API (commit-ordered cursor), replay, health, and sealing at rest."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest
from test_webhooks_helpers import (
    PHONE,
    WABA,
    Harness,
    enqueue,
    harness,
    receiver,
    subscribe,
)

from tidings.errors import Conflict, NotFound, ValidationFailed

__all__ = ["harness", "receiver"]  # fixtures


async def test_events_since_pages_in_order_with_decrypted_payloads(
    harness: Harness, receiver
) -> None:
    await subscribe(harness, receiver)
    ids = [await enqueue(harness, {"n": n, "text": "héllo"}) for n in range(5)]
    await harness.run()
    page, cursor = await harness.service.events_since(WABA, 0, limit=3)
    assert [e.id for e in page] == ids[:3]
    assert [e.position for e in page] == [1, 2, 3] and cursor == 3
    assert page[0].payload == {"n": 0, "text": "héllo"}
    assert page[0].field == "messages" and page[0].phone_number_id == PHONE
    [summary] = page[0].deliveries
    assert (summary.target_url, summary.status, summary.attempts) == (
        receiver.url(),
        "delivered",
        1,
    )
    page, cursor = await harness.service.events_since(WABA, cursor, limit=3)
    assert [e.id for e in page] == ids[3:] and cursor == 5
    assert await harness.service.events_since(WABA, cursor) == ([], 5)
    assert page[0].to_json()["deliveries"][0]["status"] == "delivered"


async def test_cursor_is_gapless_and_ordered_under_concurrent_enqueuers(harness: Harness) -> None:
    """Writers commit in any order; a reader following the cursor must still see every event.
    On PostgreSQL these transactions really overlap; the counter row's lock orders them."""
    writers, per_writer = 8, 10
    seen: list[int] = []
    done = asyncio.Event()

    async def writer(w: int) -> None:
        for _ in range(per_writer):
            async with harness.database.unit_of_work() as uow:
                await harness.service.enqueue(
                    uow, waba_id=WABA, phone_number_id=PHONE, field="messages", value={"w": w}
                )
                await asyncio.sleep(0)  # let other writers run while this one holds its lock

    async def reader() -> None:
        cursor = 0
        while not done.is_set() or len(seen) < writers * per_writer:
            page, next_cursor = await harness.service.events_since(WABA, cursor, limit=7)
            positions = [e.position for e in page]
            # Nothing is ever skipped: each page continues exactly where the last one ended.
            assert positions == list(range(cursor + 1, cursor + 1 + len(positions)))
            seen.extend(positions)
            cursor = next_cursor
            await asyncio.sleep(0)

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(writer(w) for w in range(writers)))
    done.set()
    await asyncio.wait_for(reading, 30)
    assert seen == list(range(1, writers * per_writer + 1))


async def enqueue_batch(harness: Harness, values: list) -> list[str]:
    async with harness.database.unit_of_work() as uow:
        return await harness.service.enqueue_many(
            uow, waba_id=WABA, phone_number_id=PHONE, field="messages", values=values
        )


async def test_a_batch_takes_consecutive_positions_in_its_order_and_is_delivered_in_it(
    harness: Harness, receiver
) -> None:
    await subscribe(harness, receiver)
    first = await enqueue(harness, {"n": -1})
    ids = await enqueue_batch(harness, [{"n": n} for n in range(4)])
    assert len(set(ids)) == 4 and first not in ids
    page, cursor = await harness.service.events_since(WABA, 0)
    assert [e.id for e in page] == [first, *ids] and cursor == 5
    assert [e.position for e in page] == [1, 2, 3, 4, 5]
    assert [e.payload["n"] for e in page] == [-1, 0, 1, 2, 3]
    await harness.run()
    posted = [json.loads(post.body) for post in receiver.posts()]  # one POST each, in order
    assert [body["entry"][0]["changes"][0]["value"]["n"] for body in posted] == [-1, 0, 1, 2, 3]


async def test_concurrent_batches_keep_the_cursor_gapless(harness: Harness) -> None:
    async def writer(w: int) -> None:
        for _ in range(3):
            async with harness.database.unit_of_work() as uow:
                await harness.service.enqueue_many(
                    uow,
                    waba_id=WABA,
                    phone_number_id=PHONE,
                    field="messages",
                    values=[{"w": w, "i": i} for i in range(5)],
                )
                await asyncio.sleep(0)  # other writers run while this one holds the lock

    await asyncio.gather(*(writer(w) for w in range(4)))
    page, cursor = await harness.service.events_since(WABA, 0, limit=1000)
    assert [e.position for e in page] == list(range(1, 61)) and cursor == 60
    for start in range(0, 60, 5):  # each batch's events sit together, in the batch's order
        batch = page[start : start + 5]
        assert len({e.payload["w"] for e in batch}) == 1
        assert [e.payload["i"] for e in batch] == list(range(5))


async def test_a_batch_with_one_bad_value_queues_nothing(harness: Harness) -> None:
    for bad, message in (
        ("not an object", "JSON object"),
        ({"text": "x" * (3 * 1024 * 1024)}, "3 MB"),
    ):
        with pytest.raises(ValidationFailed, match=message):
            await enqueue_batch(harness, [{"n": 1}, bad])
    assert await harness.service.events_since(WABA, 0) == ([], 0)
    assert await enqueue_batch(harness, []) == []
    assert await harness.service.events_since(WABA, 0) == ([], 0)


async def test_replay_redelivers_identical_bytes_with_the_same_event_id(
    harness: Harness, receiver
) -> None:
    await subscribe(harness, receiver)
    first = await enqueue(harness, {"text": "Grüße 🎉"})
    second = await enqueue(harness, {"text": "second"})
    assert await harness.run() == 2
    original = {p.headers["x-tidings-event-id"]: p.body for p in receiver.posts()}
    signatures = {
        p.headers["x-tidings-event-id"]: p.headers["x-hub-signature-256"] for p in receiver.posts()
    }

    harness.clock.advance(days=10)  # long after the retry window: a replay still works
    assert await harness.service.replay(WABA, event_ids=[first]) == 1
    assert await harness.run() == 1
    replayed = receiver.posts()[-1]
    assert replayed.headers["x-tidings-event-id"] == first
    assert replayed.body == original[first]
    assert replayed.headers["x-hub-signature-256"] == signatures[first]

    assert await harness.service.replay(WABA, after_position=0) == 2
    assert await harness.run() == 2
    again = {p.headers["x-tidings-event-id"]: p.body for p in receiver.posts()[-2:]}
    assert again == original
    assert set(original) == {first, second}


async def test_replay_errors(harness: Harness, receiver) -> None:
    event_id = await enqueue(harness, {"x": 1})
    with pytest.raises(Conflict, match="no webhook callback"):
        await harness.service.replay(WABA, event_ids=[event_id])
    await subscribe(harness, receiver)
    with pytest.raises(NotFound):
        await harness.service.replay(WABA, event_ids=[event_id, "nope"])
    with pytest.raises(NotFound):  # another WABA's event is not yours to replay
        await harness.service.replay("other-waba", event_ids=[event_id])
    with pytest.raises(ValidationFailed):
        await harness.service.replay(WABA)
    with pytest.raises(ValidationFailed):
        await harness.service.replay(WABA, event_ids=[event_id], after_position=0)
    # The event was stored before anyone subscribed; a replay delivers it now.
    assert await harness.service.replay(WABA, event_ids=[event_id]) == 1
    assert await harness.run() == 1


async def test_health_numbers(harness: Harness, receiver) -> None:
    await subscribe(harness, receiver)
    assert await harness.service.endpoint_health(WABA) == []
    for n in range(3):
        await enqueue(harness, {"n": n})
    assert await harness.run() == 3
    delivered_at = harness.clock.now()
    harness.clock.advance(minutes=1)
    receiver.post_status = 502
    await enqueue(harness, {"n": 3})
    assert await harness.run() == 1
    harness.clock.advance(seconds=10)
    assert await harness.run() == 1

    [health] = await harness.service.endpoint_health(WABA)
    assert health.target_url == receiver.url()
    assert (health.pending, health.delivered, health.dead) == (1, 3, 0)
    assert health.last_success_at == delivered_at
    assert health.last_failure_at == harness.clock.now()
    assert health.last_failure_code == 502
    assert health.last_failure_error == "HTTP 502"
    assert health.consecutive_failures == 2
    assert health.p50_latency_ms is not None and health.p50_latency_ms >= 0

    receiver.post_status = 200
    harness.clock.advance(seconds=30)
    assert await harness.run() == 1
    [health] = await harness.service.endpoint_health(WABA)
    assert (health.pending, health.delivered, health.consecutive_failures) == (0, 4, 0)
    assert health.to_json()["last_failure_code"] == 502


MARKER = "ZEBRA-PLAINTEXT-7781"


async def test_the_database_never_holds_payload_plaintext(harness: Harness, receiver) -> None:
    await subscribe(harness, receiver)
    receiver.post_status = 500  # failures record errors too: they must not carry content
    for _ in range(3):
        await enqueue(harness, {"messages": [{"text": {"body": f"{MARKER} secret"}}]})
    await harness.run()
    assert all(MARKER.encode() in p.body for p in receiver.posts())  # it did go out

    needles = [
        MARKER.encode(),
        MARKER.encode().hex().encode(),
        MARKER.encode().hex().upper().encode(),
    ]
    if harness.url.startswith("sqlite"):
        await harness.database.dispose()  # flush connections; the WAL stays on disk
        path = Path(harness.url.split("///", 1)[1])
        raw = b"".join(
            p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name)
        )
        assert b"webhook_events" in raw
    else:
        dsn = harness.url.replace("postgresql+asyncpg://", "postgresql://")
        connection = await asyncpg.connect(dsn)
        try:
            rows = []
            for table in ("webhook_events", "webhook_deliveries", "webhook_target_health"):
                rows += await connection.fetch(f"SELECT t::text AS row FROM {table} t")
        finally:
            await connection.close()
        raw = "\n".join(r["row"] for r in rows).encode()
        assert len(rows) >= 3
    for needle in needles:
        assert needle not in raw
