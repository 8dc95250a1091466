"""The customer service window and free entry point windows, at their boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tidings.policy.categories import Category
from tidings.policy.reasons import MetaCode, Reporting, Rule
from tidings.policy.window import EntryPoint, check_window, renew, window_state

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
S = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("elapsed", "open_"),
    [
        (timedelta(0), True),
        (S, True),
        (23 * H, True),
        (24 * H - S, True),  # 23:59:59
        (24 * H - timedelta(microseconds=1), True),
        (24 * H, False),  # 24:00:00
        (24 * H + S, False),
        (72 * H, False),
    ],
)
def test_csw_boundaries(elapsed: timedelta, open_: bool) -> None:
    state = window_state(T0, None, T0 + elapsed)
    assert state.csw_open is open_
    assert state.csw_expires_at == T0 + 24 * H
    reason = check_window(Category.SERVICE, state)
    assert (reason is None) is open_


def test_never_messaged_is_closed() -> None:
    state = window_state(None, None, T0)
    assert not state.csw_open and state.csw_expires_at is None
    reason = check_window(Category.SERVICE, state)
    assert reason is not None and reason.code is MetaCode.REENGAGEMENT
    assert "never" in reason.details


def test_131047_is_async_and_not_retryable() -> None:
    reason = check_window(Category.SERVICE, window_state(T0, None, T0 + 25 * H))
    assert reason is not None
    assert reason.rule is Rule.WINDOW
    assert reason.code == 131047
    assert reason.reporting is Reporting.ASYNC
    assert reason.retry_after is None and not reason.retryable


@pytest.mark.parametrize(
    "category", [Category.MARKETING, Category.UTILITY, Category.AUTHENTICATION]
)
def test_templates_pass_outside_window(category: Category) -> None:
    assert check_window(category, window_state(None, None, T0)) is None
    assert check_window(category, window_state(T0, None, T0 + 48 * H)) is None


def test_renew_never_moves_back() -> None:
    assert renew(None, T0) == T0
    assert renew(T0, T0 + H) == T0 + H
    assert renew(T0 + H, T0) == T0 + H


def test_a_new_message_renews_the_window() -> None:
    last = renew(T0, T0 + 20 * H)
    assert window_state(last, None, T0 + 30 * H).csw_open
    assert not window_state(last, None, T0 + 44 * H).csw_open


def test_csw_remaining() -> None:
    assert window_state(T0, None, T0 + 20 * H).csw_remaining() == 4 * H
    assert window_state(T0, None, T0 + 30 * H).csw_remaining() == timedelta(0)


@pytest.mark.parametrize(
    ("entry", "at", "fep_open", "opens_now", "expires"),
    [
        # unanswered, within 24 h: this send opens a 72 h window from now
        (EntryPoint(T0), T0 + H, True, True, T0 + H + 72 * H),
        (EntryPoint(T0), T0 + 24 * H - S, True, True, T0 + 24 * H - S + 72 * H),
        # unanswered for 24 h: no free entry point any more
        (EntryPoint(T0), T0 + 24 * H, False, False, None),
        # answered at +2 h: open until +74 h exclusive
        (EntryPoint(T0, T0 + 2 * H), T0 + 50 * H, True, False, T0 + 74 * H),
        (EntryPoint(T0, T0 + 2 * H), T0 + 74 * H - S, True, False, T0 + 74 * H),
        (EntryPoint(T0, T0 + 2 * H), T0 + 74 * H, False, False, T0 + 74 * H),
        # answered too late: never opened
        (EntryPoint(T0, T0 + 25 * H), T0 + 26 * H, False, False, None),
    ],
)
def test_free_entry_point(
    entry: EntryPoint, at: datetime, fep_open: bool, opens_now: bool, expires: datetime | None
) -> None:
    state = window_state(T0, entry, at)
    assert (state.fep_open or state.fep_opens_now) is fep_open
    assert state.fep_opens_now is opens_now
    assert state.fep_expires_at == expires


def test_fep_does_not_allow_free_form_after_the_csw() -> None:
    entry = EntryPoint(T0, T0 + H)
    state = window_state(T0, entry, T0 + 30 * H)
    assert state.fep_open and not state.csw_open
    assert check_window(Category.SERVICE, state) is not None
    assert check_window(Category.MARKETING, state) is None
