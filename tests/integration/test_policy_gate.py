"""The policy gate on a real database: the facts it gathers (service window, consent, blocks,
marketing cap) and what `accept` does with its decision (a Graph error now, or a `failed`
status webhook after a 200). Over HTTP with a real customer: test_policy_send.py."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import pytest
from limits_support import provision
from sqlalchemy import select

from tidings.business.models import BusinessMessage
from tidings.business.policy_gate import PolicyRefused, SendContext, TemplateUse
from tidings.business.service import PhoneInfo
from tidings.business_api.graph_errors import graph_envelope, map_any_app_error
from tidings.policy.categories import Category
from tidings.policy.evaluate import Decision
from tidings.runtime import Runtime, build_runtime
from tidings.signals.repository import SignalsRepository

BUSINESS = "+15550109999"
CUSTOMER = "+15550100001"


@pytest.fixture
async def phone(local: Runtime) -> PhoneInfo:
    return await provision(local, BUSINESS, phone_number_id="900100")


def template(
    category: Category = Category.UTILITY, status: str = "APPROVED", **extra: Any
) -> TemplateUse:
    return TemplateUse("1001", "order_update", "en_US", category, status, 1, **extra)


async def customer_writes(
    runtime: Runtime, phone: PhoneInfo, content: dict[str, Any] | None = None
) -> None:
    """What the business platform does when it applies a customer's message."""
    async with runtime.database.unit_of_work() as uow:
        await runtime.signals.inbound(
            uow, phone, CUSTOMER, content or {"type": "text", "text": {"body": "hi"}}, "wamid.in"
        )


async def decide(runtime: Runtime, phone: PhoneInfo, use: TemplateUse | None = None) -> Decision:
    async with runtime.database.read_only() as uow:
        send = SendContext(phone, CUSTOMER, use, runtime.clock.now())
        return await runtime.business_messaging.gate.decide(uow.session, send)


WINDOW_BOUNDARIES = [
    (timedelta(0), True),
    (timedelta(hours=23, minutes=59, seconds=59), True),
    (timedelta(hours=24), False),
    (timedelta(hours=24, seconds=1), False),
    (timedelta(days=9), False),
]


@pytest.mark.parametrize(("after", "open_"), WINDOW_BOUNDARIES)
async def test_free_form_inside_the_window_only(local, phone, clock, after, open_) -> None:
    await customer_writes(local, phone)
    clock.advance(after)
    decision = await decide(local, phone)
    assert decision.allowed is open_
    assert decision.window.csw_open is open_
    if not open_:
        assert [(r.rule, r.code) for r in decision.reasons] == [("window", 131047)]
    # A template passes either way.
    assert (await decide(local, phone, template())).allowed


async def test_never_written_and_a_renewed_window(local, phone, clock) -> None:
    assert (await decide(local, phone)).rules == ("window",)
    await customer_writes(local, phone)
    clock.advance(hours=20)
    await customer_writes(local, phone)  # renews: 24 hours from now
    clock.advance(hours=23, minutes=59, seconds=59)
    assert (await decide(local, phone)).allowed
    clock.advance(seconds=1)
    assert not (await decide(local, phone)).allowed


async def test_an_async_refusal_is_accepted_then_failed_with_a_webhook(local, phone) -> None:
    wamid = await local.business_messaging.accept(
        phone, CUSTOMER, "text", {"body": "hello"}, callback_data="order-7"
    )
    async with local.database.read_only() as uow:
        stored = (
            await uow.session.execute(
                select(BusinessMessage.status, BusinessMessage.error_code).where(
                    BusinessMessage.wamid == wamid
                )
            )
        ).one()
    assert tuple(stored) == ("failed", 131047)
    events, _ = await local.webhooks.events_since(phone.waba_id)
    [status] = [s for e in events for s in e.payload.get("statuses", [])]
    assert status["id"] == wamid and status["status"] == "failed"
    assert status["biz_opaque_callback_data"] == "order-7"
    [error] = status["errors"]
    assert error["code"] == 131047 and error["title"] == "Re-engagement message"
    assert "never messaged" in error["error_data"]["details"]
    # Nothing is left for the delivery worker.
    assert await local.business_messaging.deliver_pending(phone) == 0


async def test_a_sync_refusal_raises_the_graph_error_and_stores_nothing(
    local, phone, clock
) -> None:
    paused = template(status="PAUSED", paused_until=clock.now() + timedelta(hours=3))
    with pytest.raises(PolicyRefused) as refused:
        await local.business_messaging.accept(
            phone, CUSTOMER, "template", {"name": "order_update"}, template=paused
        )
    graph = map_any_app_error(refused.value)
    body = graph_envelope(graph, "trace")["error"]
    assert (graph.http_status, body["code"]) == (400, 132015)
    assert body["message"] == "(#132015) Template is Paused"
    assert "paused" in body["error_data"]["details"]
    disabled = template(status="DISABLED")
    with pytest.raises(PolicyRefused) as refused:
        await local.business_messaging.accept(
            phone, CUSTOMER, "template", {"name": "order_update"}, template=disabled
        )
    assert map_any_app_error(refused.value).graph_code == 132016
    async with local.database.read_only() as uow:
        assert (await uow.session.scalars(select(BusinessMessage))).all() == []
    assert (await local.webhooks.events_since(phone.waba_id))[0] == []
    # The pause over, the same template goes.
    clock.advance(hours=3)
    assert (await decide(local, phone, paused)).allowed


QR_HELLO = {
    "type": "text",
    "text": {"body": "Hi! Saw your poster"},
    "referral": {"source_type": "qr", "source_id": "shop-window-3"},
}


async def test_a_conversation_from_a_qr_code_opens_a_free_entry_point(local, phone, clock) -> None:
    await customer_writes(local, phone, QR_HELLO)
    clock.advance(hours=2)
    first = await decide(local, phone)
    assert first.allowed and first.opens_entry_point
    assert first.charge is not None and first.charge.type == "free_entry_point"
    await local.business_messaging.accept(phone, CUSTOMER, "text", {"body": "Welcome!"})
    # 32 hours after the customer's message: the service window is closed, the 72-hour free
    # entry point window (from the answer, 2 hours in) is not.
    clock.advance(hours=30)
    assert (await decide(local, phone)).rules == ("window",)
    marketing = await decide(local, phone, template(Category.MARKETING))
    assert marketing.allowed and marketing.window.fep_open and not marketing.opens_entry_point
    assert marketing.charge is not None and marketing.charge.type == "free_entry_point"
    clock.advance(hours=42)  # 72 hours after the answer: over (half-open)
    later = await decide(local, phone, template(Category.MARKETING))
    assert not later.window.fep_open
    assert later.charge is not None and later.charge.type == "regular"


async def test_entry_points_only_start_conversations_and_need_an_answer_within_24_hours(
    local, phone, clock
) -> None:
    await customer_writes(local, phone)  # an ordinary conversation is open...
    clock.advance(hours=1)
    await customer_writes(local, phone, QR_HELLO)  # ...so the QR code starts nothing
    assert not (await decide(local, phone)).opens_entry_point
    clock.advance(days=2)
    await customer_writes(local, phone, QR_HELLO)  # a new conversation from the QR code
    clock.advance(hours=24)  # unanswered for 24 hours: no free entry point any more
    decision = await decide(local, phone, template(Category.MARKETING))
    assert not decision.opens_entry_point and not decision.window.fep_open
    # A referral of an unknown kind is no entry point at all.
    clock.advance(days=2)
    await customer_writes(local, phone, {**QR_HELLO, "referral": {"source_type": "billboard"}})
    assert not (await decide(local, phone)).opens_entry_point


async def test_preflight_counts_nothing(local, phone) -> None:
    """The pair rate admits a burst of 45: asking 60 times first must not spend any of it."""
    utility = template()
    for _ in range(60):
        decision = await local.business_messaging.preflight(
            SendContext(phone, CUSTOMER, utility, local.clock.now())
        )
        assert decision.allowed
    for _ in range(45):
        await local.business_messaging.accept(phone, CUSTOMER, "template", {}, template=utility)
    with pytest.raises(PolicyRefused) as refused:
        await local.business_messaging.accept(phone, CUSTOMER, "template", {}, template=utility)
    assert refused.value.reason.code == 131056


@pytest.mark.redis
async def test_preflight_counts_nothing_in_redis_either(settings, clock) -> None:
    """With nodes sharing Redis the rate counters live there, outside any transaction."""
    shared = settings.model_copy(update={"bus": settings.bus.model_copy(update={"kind": "redis"})})
    runtime = build_runtime(shared, clock=clock)
    try:
        number_id = str(secrets.randbelow(10**15) + 10**15)  # fresh counters in shared Redis
        made = await runtime.businesses.create("Acme", BUSINESS, phone_number_id=number_id)
        phone = await runtime.businesses.phone_by_number_id(made.phone_number_id)
        utility = template()
        for _ in range(60):
            asked = SendContext(phone, CUSTOMER, utility, clock.now())
            assert (await runtime.business_messaging.preflight(asked)).allowed
        for _ in range(45):
            await runtime.business_messaging.accept(
                phone, CUSTOMER, "template", {}, template=utility
            )
        asked = SendContext(phone, CUSTOMER, utility, clock.now())
        assert (await runtime.business_messaging.preflight(asked)).rules == ("pair_rate",)
    finally:
        await runtime.close()


async def test_a_send_sees_what_its_own_unit_of_work_wrote_before_it(local, phone) -> None:
    # The gate reads its facts with prebuilt Core statements: a send in the unit of work that
    # just opened the window (not yet flushed) must still see it open (the session autoflushes
    # before Core statements too; a read beside the session would miss it).
    async with local.database.unit_of_work() as uow:
        window = await SignalsRepository(uow.session).window_for_update(phone.phone_pk, CUSTOMER)
        window.last_inbound_at = local.clock.now()
        wamid = await local.business_messaging.accept_in(
            uow, phone, CUSTOMER, "text", {"body": "hello"}, if_allowed=True
        )
    assert wamid is not None
