"""Messaging limits through the runtime's policy gate and the tier review, on a real database
with an injected clock: the 250th and 251st unique customer, automatic upgrades and their
webhooks, and the tier on the phone node over HTTP."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta

import httpx
import pytest
from limits_support import customers, provision, send, template

from conftest import run_in_thread, serving
from tidings.config import Settings
from tidings.kit.clock import FrozenClock
from tidings.limits.service import TierSettings, peak_rolling_count
from tidings.policy.categories import Category
from tidings.policy.quality import Quality
from tidings.policy.reasons import MetaCode, Rule
from tidings.policy.throughput import ThroughputLevel
from tidings.policy.tiers import Tier
from tidings.runtime import build_runtime


class FixedQuality:
    """A quality reader that rates every business the same (the rating alone is under test
    here; tests/integration/test_tiers_quality.py drives it from real customer signals)."""

    def __init__(self, quality: Quality) -> None:
        self._quality = quality

    async def business_quality(self, business_id: int) -> Quality:
        return self._quality


BUSINESS = "+15550109999"
STEP = timedelta(milliseconds=13)  # under 80 messages per second


@pytest.fixture
async def runtime(settings: Settings, clock: FrozenClock):
    made = build_runtime(settings, clock=clock)
    yield made
    await made.close()


async def reach(runtime, phone, count: int, start: int = 0) -> None:
    for customer in customers(count, start):
        decision = await send(runtime, phone, customer)
        assert decision.allowed and decision.counts_toward_limit, decision.reasons
        runtime.clock.advance(STEP)


async def test_the_250th_new_customer_passes_and_the_251st_is_refused(runtime, clock) -> None:
    phone = await provision(runtime, BUSINESS)
    first_reach = clock.now()
    await reach(runtime, phone, 250)
    refused = await send(runtime, phone, customers(1, start=250)[0])
    assert refused.rules == (Rule.TIER,)
    assert refused.primary is not None and refused.primary.code == MetaCode.SPAM_RATE_LIMIT
    assert "250 unique customers" in refused.primary.details
    # Room frees up when the first reach leaves the rolling 24 hours.
    assert refused.retry_at == first_reach + timedelta(hours=24)
    # Customers already reached do not count again, whatever the category.
    again = await send(runtime, phone, customers(1)[0], use=template(Category.MARKETING))
    assert again.allowed and not again.counts_toward_limit
    # A refused customer was not counted: still refused, until the oldest reach expires.
    clock.set(first_reach + timedelta(hours=24) - timedelta(milliseconds=1))
    assert (await send(runtime, phone, customers(1, start=250)[0])).rules == (Rule.TIER,)
    clock.set(first_reach + timedelta(hours=24))
    assert (await send(runtime, phone, customers(1, start=250)[0])).allowed


async def test_another_business_has_a_limit_of_its_own(runtime) -> None:
    phone = await provision(runtime, BUSINESS)
    await reach(runtime, phone, 250)
    other = await provision(runtime, "+15550108888", name="Other Shop")
    # Another business has its own limit.
    assert (await send(runtime, other, customers(1, start=900)[0])).allowed


async def test_an_upgrade_follows_half_the_limit_used_and_takes_effect_after_the_delay(
    runtime, clock
) -> None:
    phone = await provision(runtime, BUSINESS)
    await reach(runtime, phone, 124)
    assert await runtime.messaging_limits.review_tiers() == 0
    clock.advance(hours=7)
    assert await runtime.messaging_limits.review_tiers() == 0  # 124 < 125: not eligible
    await reach(runtime, phone, 1, start=124)  # the 125th: half of 250
    assert await runtime.messaging_limits.review_tiers() == 0  # decided, not yet in force
    assert (await runtime.messaging_limits.phone_limits(phone)).tier is Tier.TIER_250
    events, _ = await runtime.webhooks.events_since(phone.waba_id)
    assert not [e for e in events if e.field != "messages"]

    clock.advance(hours=6)
    assert (await runtime.messaging_limits.phone_limits(phone)).tier is Tier.TIER_2K
    assert await runtime.messaging_limits.review_tiers() == 1
    assert await runtime.messaging_limits.review_tiers() == 0  # once
    events, _ = await runtime.webhooks.events_since(phone.waba_id)
    by_field = {e.field: e.payload for e in events}
    assert by_field["phone_number_quality_update"] == {
        "display_phone_number": phone.display_phone_number,
        "event": "UPGRADE",
        "old_limit": "TIER_250",
        "current_limit": "TIER_2K",
        "max_daily_conversations_per_business": "TIER_2K",
    }
    assert by_field["business_capability_update"] == {
        "max_daily_conversation_per_phone": 2000,
        "max_daily_conversations_per_business": 2000,
    }
    # The new limit holds for sends: 251 new customers within 24 hours pass now.
    await reach(runtime, phone, 130, start=1000)


async def test_peak_usage_counts_for_seven_days_and_low_quality_blocks_the_upgrade(
    runtime, clock
) -> None:
    phone = await provision(runtime, BUSINESS)
    runtime.messaging_limits.quality = FixedQuality(Quality.RED)
    await reach(runtime, phone, 125)
    assert await runtime.messaging_limits.review_tiers() == 0
    clock.advance(days=3)  # the 24-hour count is back to 0, the 7-day peak is still 125
    runtime.messaging_limits.quality = FixedQuality(Quality.YELLOW)
    runtime.messaging_limits.settings = type(runtime.messaging_limits.settings)(
        upgrade_delay=timedelta(0)
    )
    assert await runtime.messaging_limits.review_tiers() == 1
    assert (await runtime.messaging_limits.phone_limits(phone)).tier is Tier.TIER_2K


async def test_usage_older_than_seven_days_does_not_upgrade(runtime, clock) -> None:
    phone = await provision(runtime, BUSINESS)
    runtime.messaging_limits.quality = FixedQuality(Quality.RED)
    await reach(runtime, phone, 125)
    assert await runtime.messaging_limits.review_tiers() == 0
    clock.advance(days=8)
    runtime.messaging_limits.quality = FixedQuality(Quality.GREEN)
    assert await runtime.messaging_limits.review_tiers() == 0


@pytest.mark.parametrize(
    ("times", "peak"),
    [
        ([], 0),
        ([0, 1, 2], 3),
        ([0, 23, 24, 25], 3),  # (0, 24] holds 23, 24; (1, 25] holds 23, 24, 25
        ([0, 10, 20, 30, 40], 3),
    ],
)
def test_peak_rolling_count(clock: FrozenClock, times: list[int], peak: int) -> None:
    base = clock.now()
    stamps = [base + timedelta(hours=h) for h in times]
    assert peak_rolling_count(stamps, base - timedelta(days=1), timedelta(hours=24)) == peak


def test_the_phone_node_shows_the_tier_in_force_and_the_throughput_level(settings, clock) -> None:
    """Over HTTP: GET /{phone_number_id} reports the tier in force, as Meta names it, after
    traffic and a review in another runtime (another process) upgraded it."""

    async def traffic():  # type: ignore[no-untyped-def]
        other = build_runtime(settings, clock=clock)
        try:
            made = await other.businesses.create("Acme Shop", BUSINESS)
            phone = await other.businesses.phone_by_number_id(made.phone_number_id)
            await reach(other, phone, 125)
            await other.messaging_limits.review_tiers()
            clock.advance(hours=6)
            await other.messaging_limits.review_tiers()
            return made
        finally:
            await other.close()

    made = run_in_thread(traffic)
    with (
        serving(settings, clock) as server,
        httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {made.access_token}"}
        ) as client,
    ):
        node = client.get(f"/v23.0/{made.phone_number_id}").json()
    assert node["messaging_limit_tier"] == "TIER_2K"
    assert node["whatsapp_business_manager_messaging_limit"] == "TIER_2K"
    assert node["throughput"] == {"level": "STANDARD"}


async def test_an_unlimited_business_with_enough_reach_gets_high_throughput(
    settings: Settings, clock: FrozenClock
) -> None:
    unlimited = settings.model_copy(
        update={
            "messaging_limits": settings.messaging_limits.model_copy(
                update={"initial_tier": "TIER_UNLIMITED", "throughput_upgrade_reach": 3}
            )
        }
    )
    runtime = build_runtime(unlimited, clock=clock)
    try:
        phone = await provision(runtime, BUSINESS)
        await reach(runtime, phone, 2)
        runtime.messaging_limits.quality = FixedQuality(Quality.RED)
        await reach(runtime, phone, 1, start=2)
        await runtime.messaging_limits.review_tiers()
        assert (await runtime.messaging_limits.phone_limits(phone)).throughput_level is (
            ThroughputLevel.STANDARD
        )  # quality too low
        runtime.messaging_limits.quality = FixedQuality(Quality.YELLOW)
        await runtime.messaging_limits.review_tiers()
        await runtime.messaging_limits.review_tiers()  # once
        limits = await runtime.messaging_limits.phone_limits(phone)
        assert limits.throughput_level is ThroughputLevel.HIGH
        assert limits.tier is Tier.TIER_UNLIMITED
        events, _ = await runtime.webhooks.events_since(phone.waba_id)
        assert [e.payload for e in events if e.field == "phone_number_quality_update"] == [
            {
                "display_phone_number": phone.display_phone_number,
                "event": "THROUGHPUT_UPGRADE",
                "current_limit": "TIER_UNLIMITED",
                "max_daily_conversations_per_business": "TIER_UNLIMITED",
            }
        ]
    finally:
        await runtime.close()


async def test_the_workers_review_runs_every_ten_minutes(runtime, clock) -> None:
    phone = await provision(runtime, BUSINESS)
    limits = runtime.messaging_limits
    limits.settings = TierSettings(upgrade_delay=timedelta(0))
    assert await limits.review_tiers_when_due() == 0
    await reach(runtime, phone, 125)
    assert await limits.review_tiers_when_due() == 0  # reviewed less than 10 minutes ago
    assert (await limits.phone_limits(phone)).tier is Tier.TIER_250
    clock.advance(minutes=10)
    assert await limits.review_tiers_when_due() == 1
    assert (await limits.phone_limits(phone)).tier is Tier.TIER_2K


def test_the_throughput_command_sets_a_numbers_level(settings, clock) -> None:
    made = run_in_thread(lambda: _provisioned(settings, clock))
    base = [sys.executable, "-m", "tidings.cli.main", "business", "throughput"]
    where = ["--data", str(settings.data_dir), "--db", settings.database_url]
    done = subprocess.run(
        [*base, "--phone-number-id", made.phone_number_id, "--level", "HIGH", *where],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "HIGH" in done.stdout
    bad = subprocess.run(
        [*base, "--phone-number-id", made.phone_number_id, "--level", "TURBO", *where],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode != 0
    unknown = subprocess.run(
        [*base, "--phone-number-id", "404", "--level", "HIGH", *where],
        capture_output=True, text=True,
    )  # fmt: skip
    assert unknown.returncode != 0 and "404" in unknown.stderr + unknown.stdout

    async def level():  # type: ignore[no-untyped-def]
        runtime = build_runtime(settings, clock=clock)
        try:
            events, _ = await runtime.webhooks.events_since(made.waba_id)
            return (await runtime.messaging_limits.phone_limits(made)).throughput_level, [
                e.payload["event"] for e in events if e.field == "phone_number_quality_update"
            ]
        finally:
            await runtime.close()

    assert run_in_thread(level) == (ThroughputLevel.HIGH, ["THROUGHPUT_UPGRADE"])


async def _provisioned(settings, clock):  # type: ignore[no-untyped-def]
    runtime = build_runtime(settings, clock=clock)
    try:
        return await provision(runtime, BUSINESS)
    finally:
        await runtime.close()


async def test_concurrent_sends_cannot_both_take_the_last_unit(runtime, clock) -> None:
    """249 customers reached; eight sends to new customers race for the 250th unit."""
    phone = await provision(runtime, BUSINESS)
    await reach(runtime, phone, 249)
    racers = customers(8, start=500)
    decisions = await asyncio.gather(*(send(runtime, phone, c) for c in racers))
    assert sum(d.allowed for d in decisions) == 1
    assert all(d.rules == (Rule.TIER,) for d in decisions if not d.allowed)
