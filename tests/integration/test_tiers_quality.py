"""Tier upgrades read the real phone quality (simulated customer signals, injected clock): a
business whose number customers block (RED) is not upgraded however much it sends, and the
quality webhook carries the business's messaging limit."""

from __future__ import annotations

import pytest
from limits_support import provision
from test_quality_pausing import AUDIENCE, approved, block_by, send_and_deliver

from tidings.business.service import PhoneInfo
from tidings.policy.quality import Quality
from tidings.policy.tiers import Tier
from tidings.runtime import Runtime

BUSINESS = "+15550109999"


@pytest.fixture
async def phone(local: Runtime) -> PhoneInfo:
    return await provision(local, BUSINESS)


async def test_a_red_number_holds_the_business_at_its_tier(local, phone, clock) -> None:
    await approved(local, phone, "parcel_notice", "UTILITY")
    await send_and_deliver(local, phone, "parcel_notice", AUDIENCE)  # 100 customers reached
    await send_and_deliver(local, phone, "parcel_notice", [f"+1555030{n:04d}" for n in range(25)])
    for customer in AUDIENCE[:4]:
        await block_by(local, phone, customer)
    assert await local.phone_quality.current(phone) is Quality.RED
    assert await local.messaging_limits.quality.business_quality(phone.business_id) is Quality.RED
    assert await local.messaging_limits.review_tiers() == 0
    clock.advance(hours=6)
    assert await local.messaging_limits.review_tiers() == 0
    assert (await local.messaging_limits.phone_limits(phone)).tier is Tier.TIER_250
    views, _ = await local.webhooks.events_since(phone.waba_id, 0, 1000)
    quality = [v.payload for v in views if v.field == "phone_number_quality_update"]
    assert quality and all(
        q["current_limit"] == "TIER_250" and q["max_daily_conversations_per_business"] == "TIER_250"
        for q in quality
    )


async def test_a_healthy_number_lets_the_business_scale_up(local, phone, clock) -> None:
    await approved(local, phone, "parcel_notice", "UTILITY")
    await send_and_deliver(local, phone, "parcel_notice", AUDIENCE)
    await send_and_deliver(local, phone, "parcel_notice", [f"+1555030{n:04d}" for n in range(25)])
    assert await local.messaging_limits.quality.business_quality(phone.business_id) is Quality.GREEN
    assert await local.messaging_limits.review_tiers() == 0  # decided; in force in 6 hours
    clock.advance(hours=6)
    assert await local.messaging_limits.review_tiers() == 1
    assert (await local.messaging_limits.phone_limits(phone)).tier is Tier.TIER_2K
