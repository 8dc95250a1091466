"""Messaging limits (tiers): unique customers a business reaches outside a customer service
window in any rolling 24 hours.

Tiers go 250 → 2,000 → 10,000 → 100,000 → unlimited. A business scales up one tier when, in
the last 7 days, its peak rolling-24-hour count reached at least half of its current limit and
its quality is not low (not RED); the upgrade takes effect `upgrade_delay` later (Meta: within
6 hours). There is no downgrade (Meta dropped quality-based downgrades in October 2025).

A send outside the window to a customer not yet reached in the rolling 24 hours is a new unit
of the limit; when the count already equals the limit it is refused. Meta has no dedicated
code for this; Tidings answers 131048 "Spam rate limit hit" (Meta's code for sends restricted
because of the number's messaging volume and quality), synchronously, with `retry_after` set
to when the oldest reach leaves the 24-hour window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from tidings.policy.quality import Quality
from tidings.policy.reasons import MetaCode, Reason, Rule, reason

LIMIT_PERIOD = timedelta(hours=24)
UPGRADE_LOOKBACK = timedelta(days=7)
UPGRADE_DELAY = timedelta(hours=6)


class Tier(StrEnum):
    """Values as Meta names them in `phone_number_quality_update` and API fields."""

    TIER_250 = "TIER_250"
    TIER_2K = "TIER_2K"
    TIER_10K = "TIER_10K"
    TIER_100K = "TIER_100K"
    TIER_UNLIMITED = "TIER_UNLIMITED"

    @property
    def limit(self) -> int | None:
        """Unique customers per rolling 24 h; None for unlimited."""
        return _LIMITS[self]

    @property
    def next(self) -> Tier | None:
        order = list(Tier)
        index = order.index(self)
        return order[index + 1] if index + 1 < len(order) else None

    @property
    def capability_value(self) -> int:
        """The integer of `business_capability_update` (-1 means unlimited)."""
        limit = self.limit
        return -1 if limit is None else limit


_LIMITS: dict[Tier, int | None] = {
    Tier.TIER_250: 250,
    Tier.TIER_2K: 2_000,
    Tier.TIER_10K: 10_000,
    Tier.TIER_100K: 100_000,
    Tier.TIER_UNLIMITED: None,
}


@dataclass(frozen=True)
class TierFacts:
    """The business's messaging-limit usage, gathered by the service.

    `reached` counts unique customers reached outside a window in the rolling 24 h before now;
    `customer_reached` says whether this customer is already one of them; `oldest_reach_at` is
    the earliest of those reaches (to say when room frees up).
    """

    tier: Tier = Tier.TIER_250
    reached: int = 0
    customer_reached: bool = False
    oldest_reach_at: datetime | None = None


def is_new_unit(in_window: bool, facts: TierFacts) -> bool:
    """Whether this send would count one more unique customer against the limit."""
    return not in_window and not facts.customer_reached


def check_tier(
    in_window: bool, facts: TierFacts, now: datetime, period: timedelta = LIMIT_PERIOD
) -> Reason | None:
    limit = facts.tier.limit
    if limit is None or not is_new_unit(in_window, facts) or facts.reached < limit:
        return None
    retry_after = None
    if facts.oldest_reach_at is not None:
        retry_after = (facts.oldest_reach_at + period - now).total_seconds()
    return reason(
        Rule.TIER,
        MetaCode.SPAM_RATE_LIMIT,
        f"The business reached its messaging limit of {limit:,} unique customers outside the "
        "customer service window in 24 hours.",
        retry_after,
    )


@dataclass(frozen=True)
class TierUpgrade:
    from_tier: Tier
    to_tier: Tier
    decided_at: datetime
    effective_at: datetime


def scale_up(
    tier: Tier,
    peak_reached_last_7_days: int,
    quality: Quality,
    now: datetime,
    delay: timedelta = UPGRADE_DELAY,
) -> TierUpgrade | None:
    """The automatic upgrade due now, if any.

    `peak_reached_last_7_days` is the highest rolling-24-hour unique count in the last 7 days.
    Eligible when it is at least half of the current limit and quality is GREEN or YELLOW.
    """
    limit = tier.limit
    next_tier = tier.next
    if limit is None or next_tier is None:
        return None
    if quality not in (Quality.GREEN, Quality.YELLOW):
        return None
    if 2 * peak_reached_last_7_days < limit:
        return None
    return TierUpgrade(tier, next_tier, now, now + delay)


def effective_tier(tier: Tier, pending: TierUpgrade | None, now: datetime) -> Tier:
    """The tier in force at `now`, given an upgrade that may still be pending."""
    if pending is not None and pending.from_tier is tier and now >= pending.effective_at:
        return pending.to_tier
    return tier


# --- webhook values ---------------------------------------------------------------------------


class QualityUpdateEvent(StrEnum):
    """`event` of `phone_number_quality_update`."""

    ONBOARDING = "ONBOARDING"
    UPGRADE = "UPGRADE"
    DOWNGRADE = "DOWNGRADE"
    FLAGGED = "FLAGGED"
    UNFLAGGED = "UNFLAGGED"
    THROUGHPUT_UPGRADE = "THROUGHPUT_UPGRADE"


def phone_number_quality_update_value(
    display_phone_number: str,
    event: QualityUpdateEvent,
    current: Tier,
    old: Tier | None = None,
) -> dict[str, str]:
    """The `value` of a `phone_number_quality_update` change.

    `old_limit` is present only for messaging-limit changes; `current_limit` mirrors
    `max_daily_conversations_per_business` (Meta deprecated it but still sends it).
    """
    value = {"display_phone_number": display_phone_number, "event": str(event)}
    if old is not None:
        value["old_limit"] = str(old)
    value["current_limit"] = str(current)
    value["max_daily_conversations_per_business"] = str(current)
    return value


def business_capability_update_value(
    tier: Tier, max_phone_numbers_per_business: int | None = None
) -> dict[str, int]:
    """The `value` of a `business_capability_update` change: the limit as an integer (-1 is
    unlimited), under the v24+ name and the older per-phone name."""
    value = {
        "max_daily_conversation_per_phone": tier.capability_value,
        "max_daily_conversations_per_business": tier.capability_value,
    }
    if max_phone_numbers_per_business is not None:
        value["max_phone_numbers_per_business"] = max_phone_numbers_per_business
    return value
