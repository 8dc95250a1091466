"""The per-customer marketing cap across all businesses, at its edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tidings.policy.caps import (
    MarketingCap,
    cap_frees_at,
    check_marketing_cap,
    check_marketing_country,
    in_period,
)
from tidings.policy.categories import Category
from tidings.policy.reasons import MetaCode, Reporting, Rule

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
S = timedelta(seconds=1)
CAP = MarketingCap(count=2, period=24 * H)


def ago(*hours: float) -> tuple[datetime, ...]:
    return tuple(NOW - timedelta(hours=h) for h in hours)


@pytest.mark.parametrize(
    ("received", "refused", "retry_after"),
    [
        ((), False, None),
        (ago(1), False, None),
        (ago(1, 2), True, 22 * 3600.0),  # the oldest (2 h ago) leaves in 22 h
        (ago(1, 23), True, 1 * 3600.0),
        (ago(1, 24), False, None),  # exactly 24 h ago is out of (now - 24 h, now]
        (ago(1, 24 - 1 / 3600), True, 1.0),  # 23:59:59 ago is in, leaves in 1 s
        (ago(1, 2, 3), True, 22 * 3600.0),  # over by one: need the two oldest gone
        (ago(1, 25, 30), False, None),  # old ones do not count
        (ago(-1, 1), False, None),  # a future timestamp is ignored
    ],
)
def test_cap_edges(
    received: tuple[datetime, ...], refused: bool, retry_after: float | None
) -> None:
    reason = check_marketing_cap(Category.MARKETING, received, CAP, NOW)
    assert (reason is not None) is refused
    if reason is not None:
        assert reason.rule is Rule.CAP
        assert reason.code is MetaCode.ECOSYSTEM_ENGAGEMENT
        assert reason.reporting is Reporting.ASYNC
        assert reason.retry_after == pytest.approx(retry_after)


def test_frees_at_is_exact() -> None:
    received = ago(1, 2, 3, 4)
    frees = cap_frees_at(received, CAP, NOW)
    assert frees is not None
    assert check_marketing_cap(Category.MARKETING, received, CAP, frees - S) is not None
    assert check_marketing_cap(Category.MARKETING, received, CAP, frees) is None


def test_zero_cap_never_frees() -> None:
    cap = MarketingCap(count=0)
    reason = check_marketing_cap(Category.MARKETING, (), cap, NOW)
    assert reason is not None and reason.retry_after is None


@pytest.mark.parametrize("category", [Category.UTILITY, Category.AUTHENTICATION, Category.SERVICE])
def test_only_marketing_is_capped(category: Category) -> None:
    assert check_marketing_cap(category, ago(1, 2, 3), CAP, NOW) is None


def test_no_cap_and_window_exemption() -> None:
    assert check_marketing_cap(Category.MARKETING, ago(1, 2, 3), None, NOW) is None
    assert check_marketing_cap(Category.MARKETING, ago(1, 2), CAP, NOW, in_window=True) is None
    strict = MarketingCap(count=2, period=24 * H, exempt_in_window=False)
    assert check_marketing_cap(Category.MARKETING, ago(1, 2), strict, NOW, in_window=True)


def test_custom_period() -> None:
    weekly = MarketingCap(count=3, period=timedelta(days=7))
    assert check_marketing_cap(Category.MARKETING, ago(24, 48, 100), weekly, NOW) is not None
    assert check_marketing_cap(Category.MARKETING, ago(24, 48, 168), weekly, NOW) is None


def test_in_period_sorted() -> None:
    assert in_period(ago(3, 1, 2, 30), NOW, 24 * H) == sorted(ago(3, 1, 2))


@pytest.mark.parametrize("bad", [dict(count=-1), dict(period=timedelta(0))])
def test_invalid_caps(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MarketingCap(**bad)  # type: ignore[arg-type]


def test_marketing_blocked_country() -> None:
    blocked = frozenset({"US"})
    reason = check_marketing_country(Category.MARKETING, "us", blocked)
    assert reason is not None and reason.code == 131049 and reason.retry_after is None
    assert check_marketing_country(Category.UTILITY, "US", blocked) is None
    assert check_marketing_country(Category.MARKETING, "BR", blocked) is None
    assert check_marketing_country(Category.MARKETING, None, blocked) is None
