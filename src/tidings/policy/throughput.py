"""Throughput and pair rate as pure GCRA (generic cell rate algorithm) steps.

The state of one counter is a single number, the theoretical arrival time (TAT), kept in
integer microseconds so that the arithmetic is exact (1/80 s is 12,500 µs). The caller holds
the state (a database row under a lock, a Redis key updated by a script that does the same
arithmetic) and stores `GcraResult.state` only when it commits the send; a refusal leaves it
unchanged.

A `RateLimit` admits `burst` events back-to-back from idle, then one per `interval`. So in any
span of time t at most burst + t / interval events pass.

- Throughput per business number: 80 messages/s (burst 80, one second's worth), 1,000/s after
  the upgrade, 20/s for coexistence numbers. Over it: 130429.
- Pair rate per (business number, customer): one message per 6 s with a burst of 45 (the 46th
  rapid message is refused). Over it: 131056.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from tidings.policy.quality import Quality
from tidings.policy.reasons import MetaCode, Reason, Rule, reason
from tidings.policy.tiers import Tier

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def to_micros(when: datetime) -> int:
    """Exact microseconds since the epoch of an aware datetime."""
    return (when - _EPOCH) // _MICRO


@dataclass(frozen=True)
class CounterState:
    """One GCRA counter: the theoretical arrival time in µs since the epoch (0 when idle)."""

    tat_us: int = 0


@dataclass(frozen=True)
class RateLimit:
    interval_us: int
    burst: int

    def __post_init__(self) -> None:
        if self.interval_us <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs a positive interval and a burst of at least 1")

    @classmethod
    def per_second(cls, rate: int, burst: int | None = None) -> RateLimit:
        """`rate` events per second (interval rounded up), burst one second's worth."""
        return cls(math.ceil(1_000_000 / rate), rate if burst is None else burst)

    @classmethod
    def every(cls, interval: timedelta, burst: int = 1) -> RateLimit:
        return cls(interval // _MICRO, burst)

    @property
    def tolerance_us(self) -> int:
        return self.interval_us * self.burst


@dataclass(frozen=True)
class GcraResult:
    allowed: bool
    state: CounterState  # the state to store if the send goes ahead (unchanged if refused)
    retry_after: float  # seconds until the same request would pass; 0 when allowed
    remaining: int  # how many more single events would pass right now


def gcra(state: CounterState, limit: RateLimit, now: datetime, cost: int = 1) -> GcraResult:
    """One GCRA step for `cost` events at `now`."""
    if cost < 1 or cost > limit.burst:
        raise ValueError("cost must be between 1 and the burst")
    now_us = to_micros(now)
    tat = max(state.tat_us, now_us)
    new_tat = tat + cost * limit.interval_us
    allow_at = new_tat - limit.tolerance_us
    if allow_at > now_us:
        remaining = max(0, (now_us + limit.tolerance_us - tat) // limit.interval_us)
        return GcraResult(False, state, (allow_at - now_us) / 1_000_000, remaining)
    remaining = (now_us + limit.tolerance_us - new_tat) // limit.interval_us
    return GcraResult(True, CounterState(new_tat), 0.0, remaining)


# --- throughput -------------------------------------------------------------------------------


class ThroughputLevel(StrEnum):
    STANDARD = "STANDARD"
    HIGH = "HIGH"
    COEXISTENCE = "COEXISTENCE"


@dataclass(frozen=True)
class ThroughputLimits:
    standard: RateLimit = field(default_factory=lambda: RateLimit.per_second(80))
    high: RateLimit = field(default_factory=lambda: RateLimit.per_second(1_000))
    coexistence: RateLimit = field(default_factory=lambda: RateLimit.per_second(20))

    def for_level(self, level: ThroughputLevel) -> RateLimit:
        if level is ThroughputLevel.HIGH:
            return self.high
        if level is ThroughputLevel.COEXISTENCE:
            return self.coexistence
        return self.standard


PAIR_RATE = RateLimit.every(timedelta(seconds=6), burst=45)


@dataclass(frozen=True)
class CounterVerdict:
    """A counter step a store already took atomically (a row under lock, a Redis script).

    Several processes share one counter, so the step cannot be "read the state, decide, store
    the new state" here: the store steps it and reports the verdict as a fact. `evaluate`
    still turns that verdict into the reason, so reasons come from one place.
    """

    allowed: bool
    retry_after: float = 0.0  # seconds until the same request would pass; 0 when allowed


def throughput_reason(limit: RateLimit, retry_after: float) -> Reason:
    rate = 1_000_000 / limit.interval_us
    return reason(
        Rule.THROUGHPUT,
        MetaCode.THROUGHPUT,
        f"Cloud API message throughput has been reached ({rate:g} messages per second).",
        retry_after,
    )


def pair_rate_reason(retry_after: float) -> Reason:
    return reason(
        Rule.PAIR_RATE,
        MetaCode.PAIR_RATE_LIMIT,
        "Message failed to send because there were too many messages sent from this phone "
        "number to the same customer in a short period of time.",
        retry_after,
    )


def check_throughput(
    state: CounterState, limit: RateLimit, now: datetime
) -> tuple[Reason | None, GcraResult]:
    result = gcra(state, limit, now)
    if result.allowed:
        return None, result
    return throughput_reason(limit, result.retry_after), result


def check_pair_rate(
    state: CounterState, limit: RateLimit, now: datetime
) -> tuple[Reason | None, GcraResult]:
    result = gcra(state, limit, now)
    if result.allowed:
        return None, result
    return pair_rate_reason(result.retry_after), result


def throughput_upgrade_eligible(tier: Tier, peak_reached_24h: int, quality: Quality) -> bool:
    """Meta's rule: unlimited tier, ≥100,000 unique customers outside a window in 24 h, and
    quality YELLOW or better."""
    return (
        tier is Tier.TIER_UNLIMITED
        and peak_reached_24h >= 100_000
        and quality in (Quality.GREEN, Quality.YELLOW)
    )
