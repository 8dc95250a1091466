"""A target's requests in flight at once: different customers' events concurrently, within a
window that opens from one request as they succeed; one customer's events one after the other,
in commit order; nothing more started once one failed. Over real HTTP to a receiver that can
hold requests until several are open at once."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import pytest
from test_webhooks_helpers import (
    PHONE,
    WABA,
    Harness,
    Received,
    Receiver,
    enqueue,
    harness,
    serving,
    subscribe,
)

from tidings.kit.ids import new_uuid
from tidings.webhooks.delivery import ordering_key
from tidings.webhooks.models import WebhookDelivery
from tidings.webhooks.repository import WebhookRepository

__all__ = ["harness"]  # fixture

# How long a held request waits for company before it is answered anyway: only a broken
# window ever waits this long, and the test then fails on what the receiver saw.
HOLD_LIMIT_S = 3.0


class HoldingReceiver(Receiver):
    """Answers the first `answer_at_once` POSTs as they come, then holds each POST until
    `together` are open at once (or HOLD_LIMIT_S passed); records the most ever open."""

    def __init__(self) -> None:
        super().__init__()
        self.answer_at_once = 1
        self.together = 2
        self.status_for: Callable[[Received], int] = lambda _request: 200
        self.open = 0
        self.most_open = 0
        self._posts = 0
        self._released = 0
        self._company = threading.Condition()

    def handle(self, request: Received) -> tuple[int, dict[str, str], bytes]:
        if request.method != "POST":
            return super().handle(request)
        with self._company:
            self._posts += 1
            number = self._posts
            self.open += 1
            self.most_open = max(self.most_open, self.open)
            if self.open >= self.together:
                self._released = number  # this one and every one waiting before it
                self._company.notify_all()
            if number > self.answer_at_once:
                self._company.wait_for(lambda: self._released >= number, HOLD_LIMIT_S)
        with self.lock:
            self.received.append(request)
        with self._company:
            self.open -= 1
        return self.status_for(request), {}, b"ok"


@pytest.fixture
def holding() -> Iterator[HoldingReceiver]:
    with serving(HoldingReceiver()) as state:
        yield state


def status_of(customer: str, status: str = "delivered") -> dict[str, object]:
    return {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE},
        "statuses": [
            {"id": f"wamid.{new_uuid()}", "status": status, "recipient_id": customer},
        ],
        "contacts": [{"wa_id": customer, "profile": {"name": "x"}}],
    }


def customer_of(post: Received) -> str:
    return ordering_key(post.body)


async def delivery(harness: Harness, event_id: str) -> WebhookDelivery:
    async with harness.database.read_only() as uow:
        [row] = await WebhookRepository(uow.session).deliveries_of([event_id])
        uow.session.expunge_all()
        return row


async def test_different_customers_events_go_out_together_once_the_first_succeeded(
    harness: Harness, holding: HoldingReceiver
) -> None:
    await subscribe(harness, holding)
    customers = [f"1555000{n:04d}" for n in range(5)]
    ids = [await enqueue(harness, status_of(c)) for c in customers]
    assert await harness.run() == 5
    # The first alone, then two at once (the window doubled), then the last two.
    assert holding.most_open == 2
    posts = holding.posts()
    assert posts[0].headers["x-tidings-event-id"] == ids[0]
    assert sorted(p.headers["x-tidings-event-id"] for p in posts) == sorted(ids)
    assert [(await delivery(harness, i)).status for i in ids] == ["delivered"] * len(ids)


async def test_one_request_at_a_time_when_the_target_allows_one(
    harness: Harness, holding: HoldingReceiver
) -> None:
    harness.service.dispatcher.per_target_in_flight = 1
    holding.together = 1  # nothing to wait for: each request is answered at once
    await subscribe(harness, holding)
    ids = [await enqueue(harness, status_of(f"1555000{n:04d}")) for n in range(4)]
    assert await harness.run() == 4
    assert holding.most_open == 1
    assert [p.headers["x-tidings-event-id"] for p in holding.posts()] == ids


async def test_a_customers_events_stay_in_commit_order_while_others_interleave(
    harness: Harness, holding: HoldingReceiver
) -> None:
    await subscribe(harness, holding)
    holding.together = 1  # answer everything at once: the order is the dispatcher's alone
    order = ["A", "B", "A", "C", "B", "A", "C", "B"]
    ids = [await enqueue(harness, status_of(f"155500{name}")) for name in order]
    assert await harness.run() == len(ids)
    arrived = [p.headers["x-tidings-event-id"] for p in holding.posts()]
    for name in "ABC":
        theirs = [event for event, who in zip(ids, order, strict=True) if who == name]
        assert [event for event in arrived if event in theirs] == theirs


async def test_after_a_failure_in_the_window_that_customers_later_events_wait_behind_it(
    harness: Harness, holding: HoldingReceiver
) -> None:
    await subscribe(harness, holding)
    first, failing, other = "15550000001", "15550000002", "15550000003"
    holding.status_for = lambda post: 503 if customer_of(post) == failing else 200
    order = [first, failing, other, failing, failing]
    ids = [await enqueue(harness, status_of(c)) for c in order]
    # The first succeeds; the failing customer's first event and the other customer's go out
    # together; the failing customer's later events never start.
    assert await harness.run() == 3
    assert holding.most_open == 2
    rows = [await delivery(harness, i) for i in ids]
    assert [(r.status, r.attempts) for r in rows] == [
        ("delivered", 1),
        ("pending", 1),
        ("delivered", 1),
        ("pending", 0),
        ("pending", 0),
    ]
    holding.status_for = lambda _post: 200
    holding.together = 1
    harness.clock.advance(seconds=10)
    assert await harness.run() == 3
    assert [p.headers["x-tidings-event-id"] for p in holding.posts()[3:]] == [
        ids[1],
        ids[3],
        ids[4],
    ]
    assert [(await delivery(harness, i)).status for i in ids] == ["delivered"] * len(ids)


async def test_a_receiver_that_is_down_gets_one_request_a_pass_whoever_the_events_are_about(
    harness: Harness, holding: HoldingReceiver
) -> None:
    await subscribe(harness, holding)
    holding.status_for = lambda _post: 503
    ids = [await enqueue(harness, status_of(f"1555000{n:04d}")) for n in range(4)]
    assert await harness.run() == 1
    assert len(holding.posts()) == 1 and holding.most_open == 1
    assert [(await delivery(harness, i)).attempts for i in ids] == [1, 0, 0, 0]


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (status_of("15550001234"), "15550001234"),
        ({"contacts": [{"wa_id": "15550004321"}], "messages": [{"from": "x"}]}, "15550004321"),
        ({"messages": [{"from": "15550009999"}]}, "15550009999"),
        ({"event": "APPROVED", "message_template_id": 1}, ""),
        ({"statuses": []}, ""),
        ({"statuses": [{"status": "sent"}]}, ""),
        ("not an object", ""),
    ],
)
def test_an_event_is_ordered_by_the_customer_it_is_about(value: object, key: str) -> None:
    body = {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": value}]}]}
    assert ordering_key(json.dumps(body).encode()) == key


@pytest.mark.parametrize("body", [None, b"", b"not json", b"[]", b'{"entry": []}'])
def test_an_unreadable_event_is_in_the_line_of_events_about_no_one(body: bytes | None) -> None:
    assert ordering_key(body) == ""


async def test_a_target_that_kept_answering_starts_its_next_run_with_the_window_it_reached(
    harness: Harness, holding: HoldingReceiver
) -> None:
    await subscribe(harness, holding)
    holding.together = 1
    for n in range(4):  # 1, then 2, then 1 more: the window reached 8
        await enqueue(harness, status_of(f"1555000{n:04d}"))
    assert await harness.run() == 4
    holding.most_open, holding.answer_at_once, holding.together = 0, 0, 3
    for n in range(3):
        await enqueue(harness, status_of(f"1555001{n:04d}"))
    assert await harness.run() == 3
    assert holding.most_open == 3  # all three at once, no first request alone


async def test_after_a_failure_the_next_run_starts_from_one_request_again(
    harness: Harness, holding: HoldingReceiver
) -> None:
    await subscribe(harness, holding)
    dispatcher = harness.service.dispatcher
    holding.together = 1
    for n in range(4):
        await enqueue(harness, status_of(f"1555000{n:04d}"))
    assert await harness.run() == 4
    assert dispatcher.window(WABA, holding.url()) == 8
    holding.status_for = lambda _post: 503
    await enqueue(harness, status_of("15550010000"))
    assert await harness.run() == 1
    assert dispatcher.window(WABA, holding.url()) == 1
    holding.status_for = lambda _post: 200
    harness.clock.advance(seconds=10)
    assert await harness.run() == 1
    assert dispatcher.window(WABA, holding.url()) == 2
