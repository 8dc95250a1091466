"""`evaluate`: the rules combined, their order, every reason listed, counters and pricing."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tidings.policy import (
    RULE_ORDER,
    Category,
    ConsentStatus,
    CounterState,
    EntryPoint,
    Limits,
    MarketingCap,
    PricingCategory,
    PricingType,
    Reporting,
    Rule,
    SendFacts,
    Tier,
    TierFacts,
    evaluate,
)
from tidings.policy.throughput import PAIR_RATE, RateLimit, ThroughputLevel, to_micros

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
S = timedelta(seconds=1)
LIMITS = Limits(marketing_cap=MarketingCap(count=2, period=24 * H))

FREE_FORM = SendFacts(is_template=False, last_inbound_at=NOW - H, recipient_country="BR")
MARKETING = SendFacts(
    is_template=True,
    template_category=Category.MARKETING,
    template_status="APPROVED",
    recipient_country="BR",
    consent=ConsentStatus.OPTED_IN,
    usage=TierFacts(Tier.TIER_250, reached=10, oldest_reach_at=NOW - 10 * H),
)


def exhausted(limit_burst: int, interval_us: int) -> CounterState:
    """A counter whose burst is used up at NOW (next one passes after one interval)."""
    return CounterState(to_micros(NOW) + limit_burst * interval_us)


THROUGHPUT_FULL = exhausted(80, 12_500)
PAIR_FULL = exhausted(45, 6_000_000)

Violation = Callable[[SendFacts], SendFacts]
VIOLATIONS: dict[Rule, list[Violation]] = {
    Rule.TEMPLATE: [
        lambda f: replace(f, template_status="PAUSED", template_paused_until=NOW + 2 * H)
    ],
    Rule.BLOCK: [lambda f: replace(f, customer_blocked_business=True)],
    Rule.CONSENT: [lambda f: replace(f, consent=ConsentStatus.OPTED_OUT)],
    Rule.CAP: [lambda f: replace(f, marketing_received=(NOW - H, NOW - 2 * H))],
    Rule.TIER: [lambda f: replace(f, usage=replace(f.usage, reached=250))],
    Rule.THROUGHPUT: [lambda f: replace(f, throughput_state=THROUGHPUT_FULL)],
    Rule.PAIR_RATE: [lambda f: replace(f, pair_state=PAIR_FULL)],
}
TEMPLATE_RULES = list(VIOLATIONS)


def test_rule_order_is_documented_order() -> None:
    assert RULE_ORDER == (
        Rule.TEMPLATE,
        Rule.WINDOW,
        Rule.BLOCK,
        Rule.CONSENT,
        Rule.CAP,
        Rule.TIER,
        Rule.THROUGHPUT,
        Rule.PAIR_RATE,
    )


def test_clean_template_is_allowed_and_priced() -> None:
    decision = evaluate(MARKETING, LIMITS, NOW)
    assert decision.allowed and decision.reasons == () and decision.primary is None
    assert decision.category is Category.MARKETING
    assert decision.charge is not None
    assert decision.charge.type is PricingType.REGULAR
    assert decision.charge.amount == Decimal("0.0625")
    assert decision.counts_toward_limit  # a new customer outside the window
    assert decision.retry_at == NOW
    assert decision.throughput_state != MARKETING.throughput_state
    assert decision.pair_state != MARKETING.pair_state


@pytest.mark.parametrize(
    "rules",
    [combo for n in range(1, 8) for combo in itertools.combinations(TEMPLATE_RULES, n)],
    ids=lambda combo: "+".join(str(r) for r in combo),
)
def test_every_combination_lists_all_reasons_in_order(rules: tuple[Rule, ...]) -> None:
    facts = MARKETING
    for rule in rules:
        for violate in VIOLATIONS[rule]:
            facts = violate(facts)
    decision = evaluate(facts, LIMITS, NOW)
    assert not decision.allowed
    assert decision.rules == tuple(r for r in RULE_ORDER if r in rules)
    assert decision.primary is not None and decision.primary.rule is rules[0]
    assert decision.charge is None
    # a refusal consumes no counter
    assert decision.throughput_state == facts.throughput_state
    assert decision.pair_state == facts.pair_state


@pytest.mark.parametrize(
    ("elapsed", "allowed"), [(24 * H - S, True), (24 * H, False), (24 * H + S, False)]
)
def test_free_form_window_edge(elapsed: timedelta, allowed: bool) -> None:
    facts = replace(FREE_FORM, last_inbound_at=NOW - elapsed)
    decision = evaluate(facts, LIMITS, NOW)
    assert decision.allowed is allowed
    if allowed:
        assert decision.charge is not None
        assert decision.charge.type is PricingType.FREE_CUSTOMER_SERVICE
        assert not decision.counts_toward_limit
    else:
        assert decision.primary is not None and decision.primary.code == 131047
        assert decision.reporting is Reporting.ASYNC
        assert decision.retry_at is None


def test_free_form_with_everything_wrong() -> None:
    facts = replace(
        FREE_FORM,
        last_inbound_at=NOW - 48 * H,
        customer_blocked_business=True,
        business_blocked_customer=True,
        consent=ConsentStatus.OPTED_OUT,  # irrelevant to free-form
        marketing_received=(NOW - H, NOW - 2 * H, NOW - 3 * H),  # irrelevant
        usage=TierFacts(Tier.TIER_250, reached=250),  # irrelevant: not a template
        throughput_state=THROUGHPUT_FULL,
        pair_state=PAIR_FULL,
    )
    decision = evaluate(facts, LIMITS, NOW)
    assert [r.code for r in decision.reasons] == [131047, 131026, 130403, 130429, 131056]
    assert decision.rules == (
        Rule.WINDOW,
        Rule.BLOCK,
        Rule.BLOCK,
        Rule.THROUGHPUT,
        Rule.PAIR_RATE,
    )
    first_sync = decision.first(Reporting.SYNC)
    assert first_sync is not None and first_sync.code == 130403
    first_async = decision.first(Reporting.ASYNC)
    assert first_async is not None and first_async.code == 131047


def test_opted_out_marketing_is_131050_but_utility_unaffected() -> None:
    facts = replace(MARKETING, consent=ConsentStatus.OPTED_OUT)
    decision = evaluate(facts, LIMITS, NOW)
    assert decision.primary is not None and decision.primary.code == 131050
    assert decision.reporting is Reporting.ASYNC
    utility = replace(facts, template_category=Category.UTILITY, consent=ConsentStatus.UNKNOWN)
    assert evaluate(utility, LIMITS, NOW).allowed


def test_retry_at_for_transient_reasons_only() -> None:
    facts = replace(
        MARKETING,
        template_status="PAUSED",
        template_paused_until=NOW + 2 * H,
        pair_state=PAIR_FULL,
        usage=replace(MARKETING.usage, reached=250),  # oldest reach leaves in 14 h
    )
    decision = evaluate(facts, LIMITS, NOW)
    assert decision.retry_at == NOW + 14 * H  # the longest wait
    assert [r.retry_after for r in decision.reasons] == [7200.0, 14 * 3600.0, 6.0]
    blocked = evaluate(replace(facts, consent=ConsentStatus.OPTED_OUT), LIMITS, NOW)
    assert blocked.retry_at is None


@pytest.mark.parametrize(
    ("status", "until", "code"),
    [
        ("PAUSED", NOW + H, 132015),
        ("PAUSED", None, 132015),
        ("PAUSED", NOW, None),  # the pause is over
        ("DISABLED", None, 132016),
        ("APPROVED", None, None),
        (None, None, None),
    ],
)
def test_template_status(status: str | None, until: datetime | None, code: int | None) -> None:
    decision = evaluate(
        replace(MARKETING, template_status=status, template_paused_until=until), LIMITS, NOW
    )
    assert (decision.primary.code if decision.primary else None) == code


@pytest.mark.parametrize(("reached", "allowed"), [(249, True), (250, False)])
def test_tier_edge_through_evaluate(reached: int, allowed: bool) -> None:
    facts = replace(MARKETING, usage=replace(MARKETING.usage, reached=reached))
    decision = evaluate(facts, LIMITS, NOW)
    assert decision.allowed is allowed
    assert decision.counts_toward_limit is allowed
    if not allowed:
        assert decision.primary is not None and decision.primary.code == 131048


def test_tier_ignores_known_customers_and_open_windows() -> None:
    full = replace(MARKETING.usage, reached=250)
    known = replace(MARKETING, usage=replace(full, customer_reached=True))
    decision = evaluate(known, LIMITS, NOW)
    assert decision.allowed and not decision.counts_toward_limit
    in_window = replace(MARKETING, usage=full, last_inbound_at=NOW - H)
    decision = evaluate(in_window, LIMITS, NOW)
    assert decision.allowed and not decision.counts_toward_limit


def test_cap_exempt_inside_window() -> None:
    capped = replace(MARKETING, marketing_received=(NOW - H, NOW - 2 * H))
    assert not evaluate(capped, LIMITS, NOW).allowed
    assert evaluate(replace(capped, last_inbound_at=NOW - H), LIMITS, NOW).allowed
    assert evaluate(capped, replace(LIMITS, marketing_cap=None), NOW).allowed


def test_marketing_blocked_country() -> None:
    limits = replace(LIMITS, marketing_blocked_countries=frozenset({"US"}))
    us = replace(MARKETING, recipient_country="US")
    decision = evaluate(us, limits, NOW)
    assert decision.primary is not None and decision.primary.code == 131049
    utility = replace(us, template_category=Category.UTILITY)
    assert evaluate(utility, limits, NOW).allowed


def test_pair_rate_46th_rapid_message_through_evaluate() -> None:
    facts = FREE_FORM
    results = []
    for _ in range(46):
        decision = evaluate(facts, LIMITS, NOW)
        results.append(decision.allowed)
        facts = replace(
            facts, throughput_state=decision.throughput_state, pair_state=decision.pair_state
        )
    assert results == [True] * 45 + [False]
    assert decision.primary is not None and decision.primary.code == 131056
    assert decision.primary.retry_after == pytest.approx(6.0)
    assert evaluate(facts, LIMITS, NOW + 6 * S).allowed


@pytest.mark.parametrize(
    ("level", "passed"),
    [
        (ThroughputLevel.STANDARD, 80),
        (ThroughputLevel.HIGH, 1_000),
        (ThroughputLevel.COEXISTENCE, 20),
    ],
)
def test_throughput_level_is_respected(level: ThroughputLevel, passed: int) -> None:
    limits = replace(LIMITS, pair_rate=RateLimit(1, 10_000))  # keep the pair rate out of it
    facts = replace(FREE_FORM, throughput_level=level)
    count = 0
    for _ in range(passed + 10):
        decision = evaluate(facts, limits, NOW)
        if decision.allowed:
            count += 1
            facts = replace(facts, throughput_state=decision.throughput_state)
        else:
            assert decision.rules == (Rule.THROUGHPUT,)
    assert count == passed


def test_entry_point_send_is_free_and_opens_the_window() -> None:
    facts = replace(MARKETING, last_inbound_at=NOW - H, entry_point=EntryPoint(NOW - H))
    decision = evaluate(facts, LIMITS, NOW)
    assert decision.allowed and decision.opens_entry_point
    assert decision.charge is not None
    assert decision.charge.type is PricingType.FREE_ENTRY_POINT
    assert decision.charge.category is PricingCategory.REFERRAL_CONVERSION
    assert not decision.charge.billable


def test_authentication_international_through_evaluate() -> None:
    facts = replace(
        MARKETING,
        template_category=Category.AUTHENTICATION,
        recipient_country="IN",
        business_country="US",
    )
    decision = evaluate(facts, LIMITS, NOW)
    assert decision.charge is not None
    assert decision.charge.category is PricingCategory.AUTHENTICATION_INTERNATIONAL


def test_to_dict_is_json() -> None:
    refused = evaluate(replace(MARKETING, pair_state=PAIR_FULL), LIMITS, NOW)
    data = json.loads(json.dumps(refused.to_dict()))
    assert data["allowed"] is False
    assert data["reasons"] == [
        {
            "rule": "pair_rate",
            "code": 131056,
            "title": "(Business, Consumer) pair rate limit hit",
            "details": refused.reasons[0].details,
            "reporting": "sync",
            "retry_after": 6.0,
        }
    ]
    assert data["retry_at"] == (NOW + 6 * S).isoformat()
    allowed = json.loads(json.dumps(evaluate(MARKETING, LIMITS, NOW).to_dict()))
    assert allowed["pricing"] == {
        "billable": True,
        "type": "regular",
        "category": "marketing",
        "amount": "0.0625",
        "currency": "USD",
    }
    assert PAIR_RATE.burst == 45
