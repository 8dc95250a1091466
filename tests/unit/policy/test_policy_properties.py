"""Property-based checks (hypothesis): GCRA bounds, window monotonicity, and generated message
histories in which no accepted send ever violates a rule."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tidings.policy import (  # noqa: E402
    Category,
    ConsentAction,
    ConsentEvent,
    ConsentSource,
    ConsentStatus,
    CounterState,
    Limits,
    MarketingCap,
    SendFacts,
    consent_state,
    detect_keyword,
    evaluate,
)
from tidings.policy.throughput import RateLimit, gcra  # noqa: E402
from tidings.policy.window import renew, window_state  # noqa: E402

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
US = timedelta(microseconds=1)


def admitted_respects_bound(times_us: list[int], limit: RateLimit) -> bool:
    """For admitted events i..j: j - i + 1 <= burst + (t_j - t_i) / interval."""
    for i in range(len(times_us)):
        for j in range(i, len(times_us)):
            span = times_us[j] - times_us[i]
            if (j - i + 1) * limit.interval_us > limit.tolerance_us + span:
                return False
    return True


@settings(max_examples=200, deadline=None)
@given(
    interval_us=st.integers(1, 10_000_000),
    burst=st.integers(1, 50),
    gaps=st.lists(st.integers(0, 5_000_000), min_size=1, max_size=120),
)
def test_gcra_never_admits_more_than_burst_plus_rate(
    interval_us: int, burst: int, gaps: list[int]
) -> None:
    limit = RateLimit(interval_us, burst)
    state = CounterState()
    now_us = 0
    admitted: list[int] = []
    for gap in gaps:
        now_us += gap
        result = gcra(state, limit, T0 + now_us * US)
        if result.allowed:
            admitted.append(now_us)
            state = result.state
        else:
            assert result.state == state
            assert result.retry_after > 0
            # waiting exactly retry_after admits it
            later = T0 + now_us * US + timedelta(seconds=result.retry_after)
            assert gcra(state, limit, later).allowed
    assert admitted_respects_bound(admitted, limit)


@settings(max_examples=200, deadline=None)
@given(
    last=st.integers(0, 10 * 86_400),
    t1=st.integers(0, 10 * 86_400),
    t2=st.integers(0, 10 * 86_400),
    again=st.integers(0, 10 * 86_400),
)
def test_window_is_monotonic(last: int, t1: int, t2: int, again: int) -> None:
    s = timedelta(seconds=1)
    early, late = sorted((t1, t2))
    inbound = T0 + last * s
    open_late = window_state(inbound, None, T0 + late * s).csw_open
    open_early = window_state(inbound, None, T0 + early * s).csw_open
    if open_late and early >= last:
        assert open_early  # once closed, a window stays closed until the customer writes
    # another customer message never closes a window that was open
    renewed = renew(inbound, T0 + again * s)
    if open_late:
        assert window_state(renewed, None, T0 + late * s).csw_open


# --- generated histories ----------------------------------------------------------------------

CUSTOMERS = ("c1", "c2")
STEP = st.tuples(
    st.sampled_from(["inbound", "stop", "start", "free_form", "marketing", "utility"]),
    st.sampled_from(CUSTOMERS),
    st.one_of(
        st.integers(0, 3),  # rapid fire
        st.integers(0, 120),
        st.sampled_from([3_600, 6 * 3_600, 86_399, 86_400, 86_401]),
    ),
)


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(STEP, min_size=1, max_size=150))
def test_no_accepted_send_violates_a_rule(steps: list[tuple[str, str, int]]) -> None:
    cap = MarketingCap(count=3, period=timedelta(hours=24), exempt_in_window=False)
    limits = Limits(marketing_cap=cap)
    now = T0
    last_inbound: dict[str, datetime | None] = dict.fromkeys(CUSTOMERS)
    inbound_log: dict[str, list[datetime]] = {c: [] for c in CUSTOMERS}
    ledger: dict[str, list[ConsentEvent]] = {c: [] for c in CUSTOMERS}
    marketing: dict[str, list[datetime]] = {c: [] for c in CUSTOMERS}
    pair: dict[str, CounterState] = {c: CounterState() for c in CUSTOMERS}
    pair_times: dict[str, list[datetime]] = {c: [] for c in CUSTOMERS}
    throughput = CounterState()
    accepted: list[tuple[datetime, str, str, int]] = []

    for kind, customer, advance in steps:
        now += timedelta(seconds=advance)
        if kind in ("inbound", "stop", "start"):
            last_inbound[customer] = renew(last_inbound[customer], now)
            inbound_log[customer].append(now)
            if kind != "inbound":
                match = detect_keyword(kind.upper())
                assert match is not None
                action = ConsentAction.OPT_OUT if kind == "stop" else ConsentAction.RESUME
                ledger[customer].append(
                    ConsentEvent(action, Category.MARKETING, now, ConsentSource.KEYWORD, customer)
                )
            continue
        category = {"marketing": Category.MARKETING, "utility": Category.UTILITY}.get(kind)
        facts = SendFacts(
            is_template=category is not None,
            template_category=category,
            last_inbound_at=last_inbound[customer],
            consent=consent_state(ledger[customer], category or Category.SERVICE).status,
            marketing_received=tuple(marketing[customer]),
            throughput_state=throughput,
            pair_state=pair[customer],
        )
        decision = evaluate(facts, limits, now)
        if not decision.allowed:
            assert decision.reasons
            continue
        # The ledger as it stood when the send was decided (a STOP later at the same instant
        # does not make an earlier acceptance wrong).
        accepted.append((now, customer, kind, len(ledger[customer])))
        throughput = decision.throughput_state
        pair[customer] = decision.pair_state
        pair_times[customer].append(now)
        if kind == "marketing":
            marketing[customer].append(now)

    day = timedelta(hours=24)
    for at, customer, kind, ledger_length in accepted:
        if kind == "free_form":  # the customer wrote within the last 24 h
            assert any(at - day < t <= at for t in inbound_log[customer])
        if kind == "marketing":
            state = consent_state(ledger[customer][:ledger_length], Category.MARKETING, at)
            assert state.status is not ConsentStatus.OPTED_OUT
            in_period = [t for t in marketing[customer] if at - day < t <= at]
            assert len(in_period) <= cap.count
    for customer in CUSTOMERS:
        times = [(t - T0) // US for t in pair_times[customer]]
        assert admitted_respects_bound(times, limits.pair_rate)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=30))
def test_keyword_detection_is_total_and_whole_message(text: str) -> None:
    match = detect_keyword(text)
    if match is not None:
        # the match survives surrounding punctuation but not extra words
        assert detect_keyword(f"¡{text}!") == match
        assert detect_keyword(f"please {text} now") is None


def test_evaluate_is_pure() -> None:
    facts = SendFacts(is_template=False, last_inbound_at=T0)
    limits = Limits()
    assert evaluate(facts, limits, T0) == evaluate(facts, limits, T0)
    assert replace(facts) == facts
