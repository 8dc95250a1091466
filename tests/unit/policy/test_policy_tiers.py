"""Messaging limits: thresholds, refusals, scale-up decisions, webhook values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tidings.policy.quality import Quality
from tidings.policy.reasons import MetaCode, Reporting, Rule
from tidings.policy.tiers import (
    QualityUpdateEvent,
    Tier,
    TierFacts,
    TierUpgrade,
    business_capability_update_value,
    check_tier,
    effective_tier,
    is_new_unit,
    phone_number_quality_update_value,
    scale_up,
)

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def test_tier_ladder() -> None:
    assert [t.limit for t in Tier] == [250, 2_000, 10_000, 100_000, None]
    assert [t.next for t in Tier] == [
        Tier.TIER_2K,
        Tier.TIER_10K,
        Tier.TIER_100K,
        Tier.TIER_UNLIMITED,
        None,
    ]
    assert [t.capability_value for t in Tier] == [250, 2_000, 10_000, 100_000, -1]


@pytest.mark.parametrize(
    ("tier", "reached", "refused"),
    [
        (Tier.TIER_250, 0, False),
        (Tier.TIER_250, 249, False),  # this send is the 250th unique customer
        (Tier.TIER_250, 250, True),  # this one would be the 251st
        (Tier.TIER_2K, 1_999, False),
        (Tier.TIER_2K, 2_000, True),
        (Tier.TIER_10K, 9_999, False),
        (Tier.TIER_10K, 10_000, True),
        (Tier.TIER_100K, 99_999, False),
        (Tier.TIER_100K, 100_000, True),
        (Tier.TIER_UNLIMITED, 10_000_000, False),
    ],
)
def test_tier_thresholds(tier: Tier, reached: int, refused: bool) -> None:
    facts = TierFacts(tier, reached, customer_reached=False, oldest_reach_at=NOW - 20 * H)
    reason = check_tier(False, facts, NOW)
    assert (reason is not None) is refused
    if reason is not None:
        assert reason.rule is Rule.TIER
        assert reason.code is MetaCode.SPAM_RATE_LIMIT
        assert reason.reporting is Reporting.SYNC
        assert reason.retry_after == pytest.approx(4 * 3600)


def test_known_customer_and_window_do_not_count() -> None:
    full = TierFacts(Tier.TIER_250, 250, customer_reached=True)
    assert check_tier(False, full, NOW) is None
    assert not is_new_unit(False, full)
    fresh = TierFacts(Tier.TIER_250, 250, customer_reached=False)
    assert check_tier(True, fresh, NOW) is None  # inside the window: not limited
    assert not is_new_unit(True, fresh)
    assert is_new_unit(False, fresh)


def test_retry_unknown_without_oldest_reach() -> None:
    reason = check_tier(False, TierFacts(Tier.TIER_250, 250), NOW)
    assert reason is not None and reason.retry_after is None


@pytest.mark.parametrize(
    ("tier", "peak", "quality", "to"),
    [
        (Tier.TIER_250, 125, Quality.GREEN, Tier.TIER_2K),  # exactly half
        (Tier.TIER_250, 124, Quality.GREEN, None),
        (Tier.TIER_250, 250, Quality.YELLOW, Tier.TIER_2K),
        (Tier.TIER_250, 250, Quality.RED, None),  # quality low
        (Tier.TIER_250, 250, Quality.UNKNOWN, None),
        (Tier.TIER_2K, 1_000, Quality.GREEN, Tier.TIER_10K),
        (Tier.TIER_2K, 999, Quality.GREEN, None),
        (Tier.TIER_10K, 5_000, Quality.GREEN, Tier.TIER_100K),
        (Tier.TIER_100K, 50_000, Quality.GREEN, Tier.TIER_UNLIMITED),
        (Tier.TIER_100K, 49_999, Quality.GREEN, None),
        (Tier.TIER_UNLIMITED, 10**9, Quality.GREEN, None),
    ],
)
def test_scale_up(tier: Tier, peak: int, quality: Quality, to: Tier | None) -> None:
    upgrade = scale_up(tier, peak, quality, NOW)
    if to is None:
        assert upgrade is None
    else:
        assert upgrade == TierUpgrade(tier, to, NOW, NOW + 6 * H)


def test_effective_tier() -> None:
    upgrade = TierUpgrade(Tier.TIER_250, Tier.TIER_2K, NOW, NOW + 6 * H)
    assert effective_tier(Tier.TIER_250, None, NOW) is Tier.TIER_250
    assert effective_tier(Tier.TIER_250, upgrade, NOW + 5 * H) is Tier.TIER_250
    assert effective_tier(Tier.TIER_250, upgrade, NOW + 6 * H) is Tier.TIER_2K
    assert effective_tier(Tier.TIER_10K, upgrade, NOW + 7 * H) is Tier.TIER_10K


def test_phone_number_quality_update_value() -> None:
    value = phone_number_quality_update_value(
        "15550783881", QualityUpdateEvent.UPGRADE, Tier.TIER_2K, Tier.TIER_250
    )
    assert value == {
        "display_phone_number": "15550783881",
        "event": "UPGRADE",
        "old_limit": "TIER_250",
        "current_limit": "TIER_2K",
        "max_daily_conversations_per_business": "TIER_2K",
    }
    onboarding = phone_number_quality_update_value(
        "15550783881", QualityUpdateEvent.ONBOARDING, Tier.TIER_250
    )
    assert "old_limit" not in onboarding


def test_business_capability_update_value() -> None:
    assert business_capability_update_value(Tier.TIER_10K) == {
        "max_daily_conversation_per_phone": 10_000,
        "max_daily_conversations_per_business": 10_000,
    }
    assert business_capability_update_value(Tier.TIER_UNLIMITED, 20) == {
        "max_daily_conversation_per_phone": -1,
        "max_daily_conversations_per_business": -1,
        "max_phone_numbers_per_business": 20,
    }
