"""`evaluate` with counters stepped by a shared store: the store's verdict, given as a fact,
becomes the reason (table-driven, at the edges)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidings.policy.categories import Category
from tidings.policy.evaluate import Limits, SendFacts, evaluate
from tidings.policy.reasons import MetaCode, Rule
from tidings.policy.throughput import CounterState, CounterVerdict, ThroughputLevel, to_micros

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
PASS = CounterVerdict(True)


def facts(**overrides: object) -> SendFacts:
    base: dict[str, object] = {"is_template": True, "template_category": Category.UTILITY}
    return SendFacts(**(base | overrides))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("throughput", "pair", "rules", "retry"),
    [
        (PASS, PASS, (), None),
        (CounterVerdict(False, 0.0125), PASS, (Rule.THROUGHPUT,), 0.0125),
        (PASS, CounterVerdict(False, 6.0), (Rule.PAIR_RATE,), 6.0),
        (
            CounterVerdict(False, 0.5),
            CounterVerdict(False, 6.0),
            (Rule.THROUGHPUT, Rule.PAIR_RATE),
            6.0,
        ),
        (None, None, (), None),  # no verdict: the (idle) state is checked
    ],
)
def test_verdicts_become_reasons(throughput, pair, rules, retry) -> None:
    decision = evaluate(facts(throughput_verdict=throughput, pair_verdict=pair), Limits(), NOW)
    assert decision.rules == rules
    assert decision.allowed is (rules == ())
    if retry is not None:
        assert decision.retry_at is not None
        assert (decision.retry_at - NOW).total_seconds() == pytest.approx(retry)


def test_a_verdict_replaces_the_state_check() -> None:
    """A busy state would refuse; the store's passing verdict is what counts."""
    busy = CounterState(to_micros(NOW) + 10_000_000_000)
    passing = evaluate(
        facts(throughput_state=busy, throughput_verdict=PASS, pair_state=busy, pair_verdict=PASS),
        Limits(),
        NOW,
    )
    assert passing.allowed
    refused = evaluate(facts(throughput_state=busy, pair_state=busy), Limits(), NOW)
    assert refused.rules == (Rule.THROUGHPUT, Rule.PAIR_RATE)


@pytest.mark.parametrize(
    ("level", "rate"),
    [
        (ThroughputLevel.STANDARD, "80"),
        (ThroughputLevel.HIGH, "1000"),
        (ThroughputLevel.COEXISTENCE, "20"),
    ],
)
def test_the_throughput_reason_names_the_levels_rate(level: ThroughputLevel, rate: str) -> None:
    decision = evaluate(
        facts(throughput_level=level, throughput_verdict=CounterVerdict(False, 0.01)),
        Limits(),
        NOW,
    )
    assert decision.primary is not None and decision.primary.code == MetaCode.THROUGHPUT
    assert f"({rate} messages per second)" in decision.primary.details
