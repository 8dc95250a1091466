"""The per-customer marketing cap across all businesses, with the operator's numbers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from test_policy_gate import CUSTOMER, template

from tidings.business.policy_gate import SendContext
from tidings.policy.categories import Category
from tidings.runtime import build_runtime


@pytest.fixture
async def local(settings, clock):
    # The operator allows 2 marketing templates per customer per 12 hours.
    policy = settings.policy.model_copy(
        update={"marketing_cap": 2, "marketing_cap_period_hours": 12}
    )
    runtime = build_runtime(settings.model_copy(update={"policy": policy}), clock=clock)
    yield runtime
    await runtime.close()


async def test_marketing_from_every_business_counts_toward_one_cap(local, clock) -> None:
    shops = []
    for n, (name, number) in enumerate((("Acme", "+15550109999"), ("Bolt", "+15550109998"))):
        made = await local.businesses.create(name, number, phone_number_id=f"90010{n}")
        shops.append(await local.businesses.phone_by_number_id(made.phone_number_id))
    acme, bolt = shops
    marketing = template(Category.MARKETING)
    sent = []
    for phone in (acme, bolt):
        sent.append(
            await local.business_messaging.accept(
                phone, CUSTOMER, "template", {}, template=marketing
            )
        )
        clock.advance(hours=1)
    # Two marketing templates in 12 hours, from two businesses: the third is refused for both.
    over = await local.business_messaging.accept(acme, CUSTOMER, "template", {}, template=marketing)
    events, _ = await local.webhooks.events_since(acme.waba_id)
    [status] = [s for e in events for s in e.payload.get("statuses", []) if s["id"] == over]
    assert status["status"] == "failed"
    [error] = status["errors"]
    assert error["code"] == 131049
    assert error["title"] == (
        "This message was not delivered to maintain healthy ecosystem engagement."
    )
    assert "2 marketing messages in the last 12 hours" in error["error_data"]["details"]
    async with local.database.read_only() as uow:
        send = SendContext(bolt, CUSTOMER, marketing, clock.now())
        decision = await local.business_messaging.gate.decide(uow.session, send)
    [reason] = decision.reasons
    assert (reason.rule, reason.code) == ("cap", 131049)
    # Room frees when the first one leaves the 12-hour period (10 hours from now).
    assert reason.retry_after == timedelta(hours=10).total_seconds()
    # Utility templates are not capped; another customer is not affected.
    assert (await local.business_messaging.preflight(
        SendContext(bolt, CUSTOMER, template(Category.UTILITY), clock.now())
    )).allowed  # fmt: skip
    assert (await local.business_messaging.preflight(
        SendContext(bolt, "+15550100002", marketing, clock.now())
    )).allowed  # fmt: skip
    clock.advance(hours=10)
    assert (await local.business_messaging.preflight(
        SendContext(bolt, CUSTOMER, marketing, clock.now())
    )).allowed  # fmt: skip


async def test_the_cap_can_be_turned_off_and_countries_blocked(settings, clock) -> None:
    policy = settings.policy.model_copy(
        update={"marketing_cap_enabled": False, "marketing_blocked_countries": ["us"]}
    )
    runtime = build_runtime(settings.model_copy(update={"policy": policy}), clock=clock)
    try:
        made = await runtime.businesses.create("Acme", "+15550109999", phone_number_id="900100")
        phone = await runtime.businesses.phone_by_number_id(made.phone_number_id)
        marketing = template(Category.MARKETING)
        for _ in range(6):  # no cap at all...
            await runtime.business_messaging.accept(
                phone, "+447700900123", "template", {}, template=marketing
            )
        british = SendContext(phone, "+447700900123", marketing, clock.now())
        assert (await runtime.business_messaging.preflight(british)).allowed
        # ...but no marketing to US numbers (as Meta since April 2025), without a retry.
        american = SendContext(phone, CUSTOMER, marketing, clock.now())
        decision = await runtime.business_messaging.preflight(american)
        assert [(r.code, r.retry_after) for r in decision.reasons] == [(131049, None)]
        assert (
            await runtime.business_messaging.preflight(
                SendContext(phone, CUSTOMER, template(Category.UTILITY), clock.now())
            )
        ).allowed
    finally:
        await runtime.close()
