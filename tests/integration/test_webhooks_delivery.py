"""Webhook delivery over real HTTP: signatures, retries across the backoff schedule, dead
letters, lost leases, the doorbell and the outbound policy. Time moves by the FrozenClock."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import timedelta

import pytest
from test_webhooks_helpers import (
    PHONE,
    SECRET,
    VERIFY_TOKEN,
    WABA,
    Harness,
    build_database,
    closed_port,
    enqueue,
    harness,
    receiver,
    subscribe,
)

from tidings.errors import ValidationFailed
from tidings.kit.ids import new_uuid
from tidings.outbound import OutboundPolicy
from tidings.webhooks.delivery import RETRY_WINDOW, Dispatcher
from tidings.webhooks.models import WebhookDelivery
from tidings.webhooks.repository import WebhookRepository
from tidings.webhooks.service import WebhookService
from tidings.webhooks.signing import signature_matches

__all__ = ["harness", "receiver"]  # fixtures


def status_value(text: str) -> dict[str, object]:
    return {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE},
        "messages": [{"from": "15550002222", "id": f"wamid.{new_uuid()}", "text": {"body": text}}],
    }


async def deliveries(harness: Harness, event_id: str) -> list[WebhookDelivery]:
    async with harness.database.read_only() as uow:
        rows = await WebhookRepository(uow.session).deliveries_of([event_id])
        uow.session.expunge_all()  # keep the loaded values after the read-only rollback
        return rows


async def test_delivery_is_signed_over_the_exact_bytes_with_non_ascii_escaped(
    harness: Harness, receiver
) -> None:
    await subscribe(harness, receiver)
    event_id = await enqueue(harness, status_value("café au lait ☕ 👋"))
    assert await harness.run() == 1

    [post] = receiver.posts()
    assert post.headers["content-type"] == "application/json"
    assert post.headers["x-tidings-event-id"] == event_id
    signature = post.headers["x-hub-signature-256"]
    assert signature.startswith("sha256=") and signature == signature.lower()
    assert signature_matches(SECRET, post.body, signature)
    assert not signature_matches("some other secret", post.body, signature)
    post.body.decode("ascii")  # every byte is ASCII
    assert b"caf\\u00e9" in post.body and b"\\ud83d\\udc4b" in post.body
    assert b" " not in post.body.replace(b"caf\\u00e9 au lait \\u2615 \\ud83d\\udc4b", b"")
    document = json.loads(post.body)
    assert document["object"] == "whatsapp_business_account"
    [entry] = document["entry"]
    assert entry["id"] == WABA
    assert entry["changes"][0]["field"] == "messages"
    assert entry["changes"][0]["value"]["messages"][0]["text"]["body"] == "café au lait ☕ 👋"
    [row] = await deliveries(harness, event_id)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 1, 200)
    assert await harness.run() == 0  # nothing left


async def test_a_rolled_back_transaction_leaves_no_event_and_rings_no_bell(
    harness: Harness, receiver
) -> None:
    await subscribe(harness, receiver)
    doorbell = harness.service.dispatcher.doorbell
    with pytest.raises(RuntimeError):
        async with harness.database.unit_of_work() as uow:
            await harness.service.enqueue(
                uow, waba_id=WABA, phone_number_id=PHONE, field="messages", value={"a": 1}
            )
            raise RuntimeError("the business transaction failed")
    assert not doorbell.is_set()
    assert await harness.service.events_since(WABA, 0) == ([], 0)
    assert await harness.run() == 0

    async with harness.database.unit_of_work() as uow:
        for n in range(3):
            await harness.service.enqueue(
                uow, waba_id=WABA, phone_number_id=PHONE, field="messages", value={"n": n}
            )
        assert not doorbell.is_set()  # never before the commit
    assert doorbell.is_set()  # once, after it
    assert await harness.run() == 3


async def test_events_arrive_once_the_receiver_recovers_with_identical_bytes(
    harness: Harness, receiver
) -> None:
    await subscribe(harness, receiver)
    receiver.post_status = 503
    first = await enqueue(harness, status_value("first"))
    second = await enqueue(harness, status_value("second"))
    # Only the first is tried: a target takes its events in order, so the second waits.
    assert await harness.run() == 1
    for wait in (10, 30, 60, 300):
        harness.clock.advance(seconds=wait - 1)
        assert await harness.run() == 0  # not due yet
        harness.clock.advance(seconds=1)
        assert await harness.run() >= 1
    receiver.post_status = 200
    harness.clock.advance(minutes=15)
    while await harness.run():
        harness.clock.advance(minutes=15)

    by_event: dict[str, list[bytes]] = {}
    for post in receiver.posts():
        by_event.setdefault(post.headers["x-tidings-event-id"], []).append(post.body)
    assert set(by_event) == {first, second}
    for event_id, bodies in by_event.items():
        assert len(set(bodies)) == 1, "a retry must send the same bytes"
        [row] = await deliveries(harness, event_id)
        assert row.status == "delivered"
        assert row.last_status_code == 200
    # Delivered exactly once each (after the failures).
    ok = [p for p in receiver.posts()][-2:]
    assert [p.headers["x-tidings-event-id"] for p in ok] == [first, second]  # in order


async def test_a_delivery_dies_after_seven_days(harness: Harness, receiver) -> None:
    await subscribe(harness, receiver)
    receiver.post_status = 500
    event_id = await enqueue(harness, status_value("never acknowledged"))
    start = harness.clock.now()
    attempts = 0
    while True:
        attempts += await harness.run()
        [row] = await deliveries(harness, event_id)
        if row.status == "dead":
            break
        assert row.status == "pending"
        assert row.next_attempt_at <= start + RETRY_WINDOW
        harness.clock.set(row.next_attempt_at)
    assert harness.clock.now() == start + RETRY_WINDOW  # the last try is at the window's end
    assert row.attempts == attempts == len(receiver.posts())
    assert 55 < attempts < 70  # 10 s, 30 s, 1 min, 5 min, 15 min, 1 h, then every 3 h
    assert (row.last_status_code, row.last_error) == (500, "HTTP 500")
    harness.clock.advance(days=30)
    assert await harness.run() == 0
    [health] = await harness.service.endpoint_health(WABA)
    assert (health.dead, health.pending, health.delivered) == (1, 0, 0)
    assert health.consecutive_failures == attempts


async def test_a_claim_whose_worker_died_is_claimed_again_after_the_lease(
    harness: Harness, receiver
) -> None:
    await subscribe(harness, receiver)
    event_id = await enqueue(harness, status_value("orphaned"))
    dispatcher = harness.service.dispatcher
    now = harness.clock.now()
    async with harness.database.unit_of_work() as uow:  # a worker claims, then dies
        [claimed] = await WebhookRepository(uow.session).claim_due(
            now, now + dispatcher.lease, "dead-worker", 10
        )
    assert claimed.event_id == event_id
    assert await harness.run() == 0  # leased to the dead worker
    harness.clock.advance(dispatcher.lease - timedelta(seconds=1))
    assert await harness.run() == 0
    harness.clock.advance(seconds=1)
    assert await harness.run() == 1
    [row] = await deliveries(harness, event_id)
    assert (row.status, row.attempts) == ("delivered", 2)
    assert len(receiver.posts()) == 1


async def test_refused_connections_are_retried_with_a_short_reason(harness: Harness) -> None:
    await harness.service.subscribe_app(WABA)
    async with harness.database.unit_of_work() as uow:  # no handshake possible: write directly
        app = await WebhookRepository(uow.session).ensure_app("tidings", harness.clock.now())
        app.callback_url = f"http://127.0.0.1:{closed_port()}/hook"
    event_id = await enqueue(harness, status_value("nobody home"))
    assert await harness.run() == 1
    [row] = await deliveries(harness, event_id)
    assert row.status == "pending"
    assert row.last_error == "request failed: ConnectError"
    assert row.next_attempt_at == harness.clock.now() + timedelta(seconds=10)


async def test_no_app_secret_means_nothing_is_sent(harness: Harness, receiver) -> None:
    await subscribe(harness, receiver)
    harness.secrets.clear()
    event_id = await enqueue(harness, status_value("unsigned?"))
    assert await harness.run() == 1
    assert receiver.posts() == []
    [row] = await deliveries(harness, event_id)
    assert row.status == "pending" and "no app secret" in (row.last_error or "")


async def test_production_policy_refuses_loopback_at_setup_and_at_send(
    harness: Harness, receiver
) -> None:
    production = WebhookService(
        harness.database,
        harness.clock,
        harness.sealer,
        harness.secret_for,
        OutboundPolicy.production(),
    )
    try:
        with pytest.raises(ValidationFailed, match="must use https"):
            await production.set_app_callback(receiver.url(), VERIFY_TOKEN)
        https_loopback = f"https://127.0.0.1:{receiver.port}/hook"
        with pytest.raises(ValidationFailed, match="loopback"):
            await production.set_app_callback(https_loopback, VERIFY_TOKEN)
        with pytest.raises(ValidationFailed, match="loopback"):
            await production.subscribe_app(WABA, "https://localhost/hook", VERIFY_TOKEN)
        assert await production.list_subscribed_apps(WABA) == []
    finally:
        await production.close()
    assert receiver.received == []  # not even a handshake went out

    # A target accepted earlier (under the embedded policy) is checked again at send time.
    await subscribe(harness, receiver)
    event_id = await enqueue(harness, status_value("to loopback"))
    strict = Dispatcher(
        database=harness.database,
        clock=harness.clock,
        sealer=harness.sealer,
        secret_for=harness.secret_for,
        policy=OutboundPolicy(allow_http=True),  # http allowed, loopback still not
    )
    try:
        assert await strict.run_once() == 1
    finally:
        await strict.aclose()
    assert receiver.posts() == []
    [row] = await deliveries(harness, event_id)
    assert row.status == "pending"
    assert "refused by the outbound policy" in (row.last_error or "")
    assert "loopback" in (row.last_error or "")


async def test_the_background_loop_delivers_when_the_doorbell_rings(
    harness: Harness, receiver
) -> None:
    await subscribe(harness, receiver)
    receiver.arrived.clear()
    harness.service.start()
    event_id = await enqueue(harness, status_value("rung"))
    assert await asyncio.to_thread(receiver.arrived.wait, 10)
    await harness.service.close()
    assert [p.headers["x-tidings-event-id"] for p in receiver.posts()] == [event_id]


async def test_a_second_database_handle_sees_the_same_outbox(harness: Harness, receiver) -> None:
    """Deliveries live in the database, not in the process: another node delivers them."""
    await subscribe(harness, receiver)
    event_id = await enqueue(harness, status_value("other node"))
    other = build_database(harness.url)
    node_b = Dispatcher(
        database=other,
        clock=harness.clock,
        sealer=harness.sealer,
        secret_for=harness.secret_for,
        policy=OutboundPolicy.embedded(),
    )
    try:
        assert await node_b.run_once() == 1
    finally:
        await node_b.aclose()
        await other.dispose()
    assert [p.headers["x-tidings-event-id"] for p in receiver.posts()] == [event_id]


async def test_a_target_gets_its_events_in_commit_order(harness: Harness, receiver) -> None:
    await subscribe(harness, receiver)
    ids = [await enqueue(harness, status_value(f"s{n}")) for n in range(5)]
    assert await harness.run() == 5
    assert [p.headers["x-tidings-event-id"] for p in receiver.posts()] == ids


async def claim(harness: Harness, token: str, limit: int = 100) -> list[str]:
    now = harness.clock.now()
    lease = now + harness.service.dispatcher.lease
    async with harness.database.unit_of_work() as uow:
        claimed = await WebhookRepository(uow.session).claim_due(now, lease, token, limit)
    return [c.event_id for c in claimed]


async def test_one_claim_takes_a_targets_run_of_due_events_in_order(
    harness: Harness, receiver
) -> None:
    await subscribe(harness, receiver)
    ids = [await enqueue(harness, status_value(f"s{n}")) for n in range(5)]
    assert await claim(harness, "first", limit=3) == ids[:3]
    # The claimed run is leased: another claimer gets nothing of this target meanwhile.
    assert await claim(harness, "second") == []


async def test_a_claimed_run_stops_at_an_event_not_due(harness: Harness, receiver) -> None:
    await subscribe(harness, receiver)
    ids = [await enqueue(harness, status_value(f"s{n}")) for n in range(4)]
    [third] = await deliveries(harness, ids[2])
    async with harness.database.unit_of_work() as uow:  # put back to wait, as after a failure
        row = await uow.session.get(WebhookDelivery, third.id)
        assert row is not None
        row.next_attempt_at = harness.clock.now() + timedelta(seconds=10)
    assert await claim(harness, "first") == ids[:2]


async def test_after_a_failure_the_rest_of_the_run_waits_behind_it(
    harness: Harness, receiver
) -> None:
    await subscribe(harness, receiver)
    receiver.post_status = 503
    ids = [await enqueue(harness, status_value(f"s{n}")) for n in range(3)]
    assert await harness.run() == 1  # the first failed; the others were not sent after it
    assert len(receiver.posts()) == 1
    rows = [(await deliveries(harness, event_id))[0] for event_id in ids]
    assert [(r.status, r.attempts) for r in rows] == [("pending", 1)] + [("pending", 0)] * 2
    receiver.post_status = 200
    harness.clock.advance(seconds=10)
    assert await harness.run() == 3
    assert [p.headers["x-tidings-event-id"] for p in receiver.posts()[1:]] == ids


async def test_a_targets_events_share_one_kept_connection(harness: Harness, receiver) -> None:
    await subscribe(harness, receiver)
    before = receiver.connections  # the handshake's
    ids = [await enqueue(harness, status_value(f"s{n}")) for n in range(5)]
    assert await harness.run() == 5
    assert await harness.run() == 0
    ids += [await enqueue(harness, status_value("later"))]
    assert await harness.run() == 1
    assert [p.headers["x-tidings-event-id"] for p in receiver.posts()] == ids
    assert receiver.connections - before == 1
    headers = receiver.posts()[0].headers
    assert headers["host"] == f"127.0.0.1:{receiver.port}"
    assert headers["accept"] == "*/*" and headers["user-agent"].startswith("Tidings-Webhooks/")


async def _point_the_app_at(harness: Harness, url: str) -> None:
    """Route the WABA's events to `url` without the handshake (the receiver cannot answer it)."""
    await harness.service.subscribe_app(WABA)
    async with harness.database.unit_of_work() as uow:
        app = await WebhookRepository(uow.session).ensure_app("tidings", harness.clock.now())
        app.callback_url = url


async def test_a_receiver_that_does_not_answer_in_time_is_retried_as_timed_out(
    harness: Harness,
) -> None:
    impatient = Dispatcher(
        database=harness.database,
        clock=harness.clock,
        sealer=harness.sealer,
        secret_for=harness.secret_for,
        policy=OutboundPolicy(allow_http=True, allow_loopback=True, timeout_s=0.3),
    )
    with socket.socket() as listening:  # connections wait in the backlog, never answered
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        await _point_the_app_at(harness, f"http://127.0.0.1:{listening.getsockname()[1]}/hook")
        event_id = await enqueue(harness, status_value("anyone there?"))
        try:
            assert await impatient.run_once() == 1
        finally:
            await impatient.aclose()
    [row] = await deliveries(harness, event_id)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "timed out")
    assert row.next_attempt_at == harness.clock.now() + timedelta(seconds=10)


async def test_a_redirect_is_a_failed_attempt_and_is_not_followed(
    harness: Harness, receiver
) -> None:
    await subscribe(harness, receiver)
    receiver.post_status = 302
    receiver.post_headers = {"Location": receiver.url("/elsewhere")}
    event_id = await enqueue(harness, status_value("moved"))
    assert await harness.run() == 1
    assert [p.path for p in receiver.posts()] == ["/hook"]
    [row] = await deliveries(harness, event_id)
    assert (row.status, row.last_status_code, row.last_error) == ("pending", 302, "HTTP 302")


async def test_an_oversized_answer_is_cut_short_and_the_event_delivered(
    harness: Harness, receiver
) -> None:
    await subscribe(harness, receiver)
    receiver.post_body = b"x" * (1024 * 1024)  # 16 times the policy's limit
    ids = [await enqueue(harness, status_value(f"s{n}")) for n in range(2)]
    assert await harness.run() == 2
    for event_id in ids:
        [row] = await deliveries(harness, event_id)
        assert (row.status, row.last_status_code) == ("delivered", 200)
