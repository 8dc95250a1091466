"""GCRA steps: throughput (80/s, 1,000/s) and the pair rate (burst 45, then 1 per 6 s)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tidings.policy.quality import Quality
from tidings.policy.reasons import MetaCode, Reporting, Rule
from tidings.policy.throughput import (
    PAIR_RATE,
    CounterState,
    RateLimit,
    ThroughputLevel,
    ThroughputLimits,
    check_pair_rate,
    check_throughput,
    gcra,
    throughput_upgrade_eligible,
    to_micros,
)
from tidings.policy.tiers import Tier

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def burst(limit: RateLimit, now: datetime, n: int, state: CounterState) -> tuple[int, CounterState]:
    """Send n events at `now`; return how many passed and the final state."""
    passed = 0
    for _ in range(n):
        result = gcra(state, limit, now)
        if result.allowed:
            passed += 1
            state = result.state
    return passed, state


def test_to_micros_is_exact() -> None:
    assert to_micros(T0 + timedelta(microseconds=7)) - to_micros(T0) == 7


def test_rate_limit_construction() -> None:
    assert RateLimit.per_second(80) == RateLimit(12_500, 80)
    assert RateLimit.per_second(1_000) == RateLimit(1_000, 1_000)
    assert RateLimit(6_000_000, 45) == PAIR_RATE
    with pytest.raises(ValueError):
        RateLimit(0, 1)
    with pytest.raises(ValueError):
        RateLimit(1, 0)
    with pytest.raises(ValueError):
        gcra(CounterState(), PAIR_RATE, T0, cost=46)


def test_pair_rate_burst_45_then_one_per_6_seconds() -> None:
    state = CounterState()
    for i in range(45):
        result = gcra(state, PAIR_RATE, T0)
        assert result.allowed, i
        assert result.remaining == 44 - i
        state = result.state
    refused = gcra(state, PAIR_RATE, T0)  # the 46th rapid message
    assert not refused.allowed
    assert refused.state == state  # a refusal changes nothing
    assert refused.retry_after == pytest.approx(6.0)
    assert refused.remaining == 0
    # 5.999999 s later still refused, at 6 s exactly one passes, then refused again
    assert not gcra(state, PAIR_RATE, T0 + timedelta(microseconds=5_999_999)).allowed
    one = gcra(state, PAIR_RATE, T0 + 6 * S)
    assert one.allowed
    assert not gcra(one.state, PAIR_RATE, T0 + 6 * S).allowed
    # after a minute of silence, 10 more fit
    passed, _ = burst(PAIR_RATE, T0 + 66 * S, 20, one.state)
    assert passed == 10


def test_full_refill_after_idle() -> None:
    _, state = burst(PAIR_RATE, T0, 45, CounterState())
    passed, _ = burst(PAIR_RATE, T0 + 45 * 6 * S, 50, state)
    assert passed == 45  # idle for 45 intervals: the whole burst is back, not more
    passed, _ = burst(PAIR_RATE, T0 + 3600 * S, 50, state)
    assert passed == 45


@pytest.mark.parametrize(
    ("level", "per_second"),
    [
        (ThroughputLevel.STANDARD, 80),
        (ThroughputLevel.HIGH, 1_000),
        (ThroughputLevel.COEXISTENCE, 20),
    ],
)
def test_throughput_levels(level: ThroughputLevel, per_second: int) -> None:
    limit = ThroughputLimits().for_level(level)
    passed, state = burst(limit, T0, per_second + 5, CounterState())
    assert passed == per_second
    reason, result = check_throughput(state, limit, T0)
    assert reason is not None and not result.allowed
    assert reason.rule is Rule.THROUGHPUT
    assert reason.code is MetaCode.THROUGHPUT
    assert reason.reporting is Reporting.SYNC
    assert reason.retry_after == pytest.approx(1 / per_second)
    # steady state: one every interval passes forever
    now = T0
    for _ in range(200):
        now += timedelta(microseconds=limit.interval_us)
        reason, result = check_throughput(state, limit, now)
        assert reason is None
        state = result.state


def test_pair_rate_reason() -> None:
    _, state = burst(PAIR_RATE, T0, 45, CounterState())
    reason, _ = check_pair_rate(state, PAIR_RATE, T0 + 2 * S)
    assert reason is not None
    assert reason.rule is Rule.PAIR_RATE and reason.code is MetaCode.PAIR_RATE_LIMIT
    assert reason.retry_after == pytest.approx(4.0)
    ok, result = check_pair_rate(CounterState(), PAIR_RATE, T0)
    assert ok is None and result.allowed


def test_cost_counts_several_events() -> None:
    limit = RateLimit.per_second(10)
    result = gcra(CounterState(), limit, T0, cost=10)
    assert result.allowed and result.remaining == 0
    assert not gcra(result.state, limit, T0).allowed


def test_stale_state_is_treated_as_idle() -> None:
    old = CounterState(to_micros(T0 - timedelta(days=1)))
    passed, _ = burst(PAIR_RATE, T0, 50, old)
    assert passed == 45


@pytest.mark.parametrize(
    ("tier", "peak", "quality", "eligible"),
    [
        (Tier.TIER_UNLIMITED, 100_000, Quality.GREEN, True),
        (Tier.TIER_UNLIMITED, 100_000, Quality.YELLOW, True),
        (Tier.TIER_UNLIMITED, 99_999, Quality.GREEN, False),
        (Tier.TIER_UNLIMITED, 100_000, Quality.RED, False),
        (Tier.TIER_100K, 100_000, Quality.GREEN, False),
    ],
)
def test_throughput_upgrade_eligibility(
    tier: Tier, peak: int, quality: Quality, eligible: bool
) -> None:
    assert throughput_upgrade_eligible(tier, peak, quality) is eligible
