"""Quality from simulated customer signals, with the injected clock: a marketing template that
customers block turns RED and is paused for 3 hours, then 6, then disabled, with webhooks; the
phone number's rating follows and recovers as the signals age out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from limits_support import provision
from sqlalchemy import select
from templates_support import body as template_body

from tidings.business.models import BusinessMessage
from tidings.business.policy_gate import PolicyRefused
from tidings.business.service import PhoneInfo
from tidings.policy.quality import Quality, Signal, SignalKind, phone_quality, score
from tidings.runtime import Runtime
from tidings.signals.models import CustomerSignal
from tidings.signals.quality import as_signals
from tidings.signals.repository import SignalsRepository
from tidings.templates.preflight import TemplateLookup
from tidings.templates.schemas import parse_create

BUSINESS = "+15550109999"
AUDIENCE = [f"+1555020{n:04d}" for n in range(100)]
BLOCK = {"type": "block", "block": {"blocked": True}}


@pytest.fixture
async def phone(local: Runtime) -> PhoneInfo:
    return await provision(local, BUSINESS, phone_number_id="900100")


async def approved(local: Runtime, phone: PhoneInfo, name: str, category: str) -> str:
    text = (
        "Hi {{1}}, our sale starts today: take an extra discount on every pair of shoes."
        if category == "MARKETING"
        else "Your parcel {{1}} has left our warehouse and arrives tomorrow."
    )
    view = await local.templates.create(
        phone.business_id,
        phone.waba_id,
        *parse_create(template_body(name, text=text, examples=["Ann"], category=category)),
    )
    assert (view.status, view.category) == ("APPROVED", category)
    return str(view.template_id)


async def send_and_deliver(local: Runtime, phone: PhoneInfo, name: str, customers) -> None:
    use = await TemplateLookup(local.template_desk)(phone.waba_id, name, "en_US")
    for customer in customers:
        local.clock.advance(milliseconds=20)  # within the number's 80 messages per second
        wamid = await local.business_messaging.accept(phone, customer, "template", {}, template=use)
        async with local.database.unit_of_work() as uow:
            message = await uow.session.scalar(
                select(BusinessMessage).where(BusinessMessage.wamid == wamid)
            )
            assert message is not None and message.status == "accepted"
            message.status = "delivered"  # what the worker and the customer's receipt do
            await local.signals.receipts(uow, phone, [(message, "delivered", "sent")])


async def block_by(local: Runtime, phone: PhoneInfo, customer: str) -> None:
    async with local.database.unit_of_work() as uow:
        assert await local.signals.control(uow, phone, customer, BLOCK)


async def events(local: Runtime, phone: PhoneInfo, field: str) -> list[dict[str, Any]]:
    views, _ = await local.webhooks.events_since(phone.waba_id, 0, 1000)
    return [v.payload for v in views if v.field == field]


async def status_of(local: Runtime, phone: PhoneInfo, name: str) -> tuple[str, int]:
    use = await TemplateLookup(local.template_desk)(phone.waba_id, name, "en_US")
    return use.status, len(await events(local, phone, "message_template_status_update"))


async def test_a_red_marketing_template_is_paused_3h_then_6h_then_disabled(
    local, phone, clock
) -> None:
    template_id = await approved(local, phone, "shoe_sale", "MARKETING")
    base_status_events = len(await events(local, phone, "message_template_status_update"))
    await send_and_deliver(local, phone, "shoe_sale", AUDIENCE)
    # 100 deliveries, none read: one block is 1.5 % (YELLOW), two are 3 % (RED).
    await block_by(local, phone, AUDIENCE[0])
    [yellow] = await events(local, phone, "message_template_quality_update")
    assert yellow == {
        "previous_quality_score": "UNKNOWN",
        "new_quality_score": "YELLOW",
        "message_template_id": int(template_id),
        "message_template_name": "shoe_sale",
        "message_template_language": "en_US",
    }
    assert (await status_of(local, phone, "shoe_sale"))[0] == "APPROVED"
    await block_by(local, phone, AUDIENCE[1])
    assert (await events(local, phone, "message_template_quality_update"))[-1][
        "new_quality_score"
    ] == "RED"
    paused = (await events(local, phone, "message_template_status_update"))[base_status_events:]
    assert [(e["event"], e["other_info"]["title"]) for e in paused] == [("PAUSED", "FIRST_PAUSE")]
    assert paused[0]["message_template_id"] == int(template_id)
    # Sending it now is refused at once with 132015, and the gate says for how long.
    use = await TemplateLookup(local.template_desk)(phone.waba_id, "shoe_sale", "en_US")
    with pytest.raises(PolicyRefused) as refused:
        await local.business_messaging.accept(phone, AUDIENCE[5], "template", {}, template=use)
    assert refused.value.reason.code == 132015
    assert refused.value.reason.retry_after == 3 * 3600

    clock.advance(hours=2, minutes=59)
    assert await local.template_quality.unpause_due() == 0
    clock.advance(minutes=1)
    assert await local.template_quality.unpause_due() == 1
    unpaused = (await events(local, phone, "message_template_status_update"))[-1]
    assert (unpaused["event"], unpaused["other_info"]["title"]) == ("APPROVED", "UNPAUSE")
    assert (await status_of(local, phone, "shoe_sale"))[0] == "APPROVED"

    await block_by(local, phone, AUDIENCE[2])  # still RED: paused again, for 6 hours
    second = (await events(local, phone, "message_template_status_update"))[-1]
    assert second["other_info"]["title"] == "SECOND_PAUSE"
    clock.advance(hours=6)
    assert await local.template_quality.unpause_due() == 1
    await block_by(local, phone, AUDIENCE[3])  # the third time: disabled for good
    disabled = (await events(local, phone, "message_template_status_update"))[-1]
    assert disabled["event"] == "DISABLED" and disabled["other_info"]["title"] == "DISABLED"
    assert disabled["disable_info"]["disable_date"] == int(clock.now().timestamp())
    use = await TemplateLookup(local.template_desk)(phone.waba_id, "shoe_sale", "en_US")
    with pytest.raises(PolicyRefused) as refused:
        await local.business_messaging.accept(phone, AUDIENCE[6], "template", {}, template=use)
    assert refused.value.reason.code == 132016
    clock.advance(days=30)
    assert await local.template_quality.unpause_due() == 0  # disabled is not a pause


async def test_utility_templates_are_rated_but_never_paused(local, phone) -> None:
    await approved(local, phone, "parcel_notice", "UTILITY")
    await send_and_deliver(local, phone, "parcel_notice", AUDIENCE[:40])
    for customer in AUDIENCE[:5]:
        await block_by(local, phone, customer)
    quality = await events(local, phone, "message_template_quality_update")
    assert quality[-1]["new_quality_score"] == "RED"
    assert (await status_of(local, phone, "parcel_notice"))[0] == "APPROVED"


async def test_the_phone_number_rating_follows_signals_and_recovers(local, phone, clock) -> None:
    assert await local.phone_quality.current(phone) is Quality.GREEN
    await approved(local, phone, "parcel_notice", "UTILITY")
    await send_and_deliver(local, phone, "parcel_notice", AUDIENCE)
    await block_by(local, phone, AUDIENCE[0])
    assert await local.phone_quality.current(phone) is Quality.YELLOW
    await block_by(local, phone, AUDIENCE[1])
    assert await local.phone_quality.current(phone) is Quality.RED
    changes = await events(local, phone, "phone_number_quality_update")
    assert [(c["event"], c["previous_quality_rating"], c["quality_rating"]) for c in changes] == [
        ("FLAGGED", "GREEN", "YELLOW"),
        ("FLAGGED", "YELLOW", "RED"),
    ]
    assert changes[0]["display_phone_number"] == BUSINESS.lstrip("+")
    # Seven days later the signals have aged out: the housekeeping pass notices the recovery.
    clock.advance(days=7)
    assert await local.phone_quality.current(phone) is Quality.GREEN
    assert await local.phone_quality.evaluate_all() == 1
    last = (await events(local, phone, "phone_number_quality_update"))[-1]
    assert (last["event"], last["quality_rating"]) == ("UNFLAGGED", "GREEN")
    assert await local.phone_quality.evaluate_all() == 0


async def test_a_red_number_gets_no_messaging_limit_upgrade(local, phone, clock) -> None:
    """Half the limit used would earn an upgrade (tests/integration/test_tiers_limits.py),
    but not while the business's number is RED."""
    await approved(local, phone, "parcel_notice", "UTILITY")
    crowd = [f"+1555040{n:04d}" for n in range(130)]
    await send_and_deliver(local, phone, "parcel_notice", crowd)
    for customer in crowd[:4]:
        await block_by(local, phone, customer)
    assert await local.messaging_limits.quality.business_quality(phone.business_id) is Quality.RED
    clock.advance(hours=7)
    assert await local.messaging_limits.review_tiers() == 0
    clock.advance(hours=7)
    assert await local.messaging_limits.review_tiers() == 0
    assert str((await local.messaging_limits.phone_limits(phone)).tier) == "TIER_250"


async def test_ratings_read_hourly_totals_that_agree_with_every_signal(local, phone, clock) -> None:
    """Signals are summed per kind and hour before rating; the rating matches the one of the
    individual signals (weights differ by under 1.5 % within an hour)."""
    start = clock.now()
    raw: list[Signal] = []
    async with local.database.unit_of_work() as uow:
        for minute in range(0, 6 * 24 * 60, 7):  # six days, a delivery every 7 minutes
            at = start + timedelta(minutes=minute)
            kinds = [SignalKind.DELIVERED] + ([SignalKind.BLOCK] if minute % 910 == 0 else [])
            for kind in kinds:
                raw.append(Signal(kind, at))
                uow.session.add(
                    CustomerSignal(
                        phone_id=phone.phone_pk, customer="+15550100001", kind=str(kind), at=at
                    )
                )
    clock.set(start + timedelta(days=6, hours=12))
    now = clock.now()
    async with local.database.read_only() as uow:
        totals = await SignalsRepository(uow.session).signal_totals(
            now - timedelta(days=7), phone_pk=phone.phone_pk
        )
    assert len(totals) < len(raw) / 5  # hours, not signals
    assert sum(count for kind, _at, count in totals if kind == "block") == sum(
        1 for s in raw if s.kind is SignalKind.BLOCK
    )
    exact, summed = score(raw, now), score(as_signals(totals), now)
    assert abs(summed.adjusted - exact.adjusted) <= 0.015 * exact.adjusted
    assert phone_quality(as_signals(totals), now) is phone_quality(raw, now)
    assert await local.phone_quality.current(phone) is phone_quality(raw, now)
