"""The per-customer marketing cap: marketing templates a customer receives from ALL businesses
together in a rolling period. Over the cap, a marketing template is refused with 131049
("not delivered to maintain healthy ecosystem engagement"), which Meta reports asynchronously.

The facts are the times the customer received marketing templates (from any business) within
at least the last `period`; the rule counts those in the half-open window (now - period, now].
The earliest retry is when enough of them have aged out to leave room for one more.

Operators may also list countries where marketing templates are not delivered at all (Meta has
done so for +1 US numbers since April 2025); those are refused with the same code.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass
from datetime import datetime, timedelta

from tidings.policy.categories import Category
from tidings.policy.reasons import MetaCode, Reason, Rule, reason


@dataclass(frozen=True)
class MarketingCap:
    """At most `count` marketing templates per customer in any rolling `period`."""

    count: int = 4
    period: timedelta = timedelta(hours=24)
    # Customers with an open customer service window asked to talk: the cap does not apply.
    exempt_in_window: bool = True

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError("a marketing cap count cannot be negative")
        if self.period <= timedelta(0):
            raise ValueError("a marketing cap period must be positive")


def in_period(times: Iterable[datetime], now: datetime, period: timedelta) -> list[datetime]:
    """The times inside (now - period, now], oldest first."""
    start = now - period
    return sorted(t for t in times if start < t <= now)


def cap_frees_at(times: Iterable[datetime], cap: MarketingCap, now: datetime) -> datetime | None:
    """When one more marketing template fits under the cap: `now` if it already does, None if
    it never will (a cap of 0)."""
    recent = in_period(times, now, cap.period)
    if len(recent) < cap.count:
        return now
    if cap.count == 0:
        return None
    # Room appears once only count-1 remain: when recent[len - count] (0-based, oldest first)
    # leaves the window, at its time + period.
    return recent[len(recent) - cap.count] + cap.period


def check_marketing_cap(
    category: Category,
    received: Iterable[datetime],
    cap: MarketingCap | None,
    now: datetime,
    in_window: bool = False,
) -> Reason | None:
    if category is not Category.MARKETING or cap is None:
        return None
    if in_window and cap.exempt_in_window:
        return None
    frees_at = cap_frees_at(received, cap, now)
    if frees_at == now:
        return None
    retry_after = None if frees_at is None else (frees_at - now).total_seconds()
    return reason(
        Rule.CAP,
        MetaCode.ECOSYSTEM_ENGAGEMENT,
        f"The customer already received {cap.count} marketing messages in the last "
        f"{_describe(cap.period)} across all businesses.",
        retry_after,
    )


def check_marketing_country(
    category: Category, recipient_country: str | None, blocked_countries: Set[str]
) -> Reason | None:
    if category is not Category.MARKETING or recipient_country is None:
        return None
    if recipient_country.upper() not in blocked_countries:
        return None
    return reason(
        Rule.CAP,
        MetaCode.ECOSYSTEM_ENGAGEMENT,
        f"Marketing templates are not delivered to customers in {recipient_country.upper()}.",
    )


def _describe(period: timedelta) -> str:
    seconds = int(period.total_seconds())
    if seconds % 86400 == 0:
        days = seconds // 86400
        return "24 hours" if days == 1 else f"{days} days"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} hours"
    return f"{seconds} seconds"
