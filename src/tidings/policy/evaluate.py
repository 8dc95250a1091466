"""`evaluate(facts, limits, now) -> Decision`: every rule applied to one send.

Rules run in this order, and all of them run, so a refusal lists every reason; the first
reason in the order is the `primary` one, the one to report:

1. template    paused (132015, retry when the pause ends) or disabled (132016) template
2. window      free-form outside the customer service window (131047, async)
3. block       the customer blocked the business (131026, async) / the business blocked the
               customer (130403)
4. consent     the customer opted out of the send's category (131050, async)
5. cap         per-customer marketing cap across all businesses, or marketing not delivered
               in the recipient's country (131049, async)
6. tier        a new customer outside the window over the messaging limit (131048)
7. throughput  the number's messages per second (130429)
8. pair_rate   messages to this customer from this number (131056)

Counters are stepped only for a send that passes every rule: `Decision.throughput_state` and
`Decision.pair_state` are what to store when the send goes ahead (unchanged when refused).
An allowed decision carries the pricing outcome (`charge`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tidings.policy.caps import MarketingCap, check_marketing_cap, check_marketing_country
from tidings.policy.categories import AUTHENTICATION_INTERNATIONAL_COUNTRIES, Category, category_of
from tidings.policy.consent import ConsentStatus, check_blocks, check_consent
from tidings.policy.pricing import DEFAULT_RATE_CARD, Charge, RateCard, charge_for
from tidings.policy.reasons import MetaCode, Reason, Reporting, Rule, reason
from tidings.policy.throughput import (
    PAIR_RATE,
    CounterState,
    CounterVerdict,
    RateLimit,
    ThroughputLevel,
    ThroughputLimits,
    check_pair_rate,
    check_throughput,
    pair_rate_reason,
    throughput_reason,
)
from tidings.policy.tiers import LIMIT_PERIOD, TierFacts, check_tier, is_new_unit
from tidings.policy.window import EntryPoint, WindowLengths, WindowState, check_window, window_state

RULE_ORDER: tuple[Rule, ...] = (
    Rule.TEMPLATE,
    Rule.WINDOW,
    Rule.BLOCK,
    Rule.CONSENT,
    Rule.CAP,
    Rule.TIER,
    Rule.THROUGHPUT,
    Rule.PAIR_RATE,
)


@dataclass(frozen=True)
class SendFacts:
    """Everything the rules need about one send, gathered by the service.

    - `template_category`: the template's category (None for free-form messages).
    - `template_status` / `template_paused_until`: the template's status ("APPROVED",
      "PAUSED", "DISABLED", ...); other statuses are the template service's business.
    - `consent`: the customer's consent for this send's category with this business.
    - `marketing_received`: when this customer received marketing templates from any
      business, covering at least the cap period before `now`.
    - `usage`: the business's messaging-limit usage and whether this customer counts already.
    - `throughput_state` / `pair_state`: the GCRA counters of the number and of the
      (number, customer) pair, when the caller holds the state.
    - `throughput_verdict` / `pair_verdict`: the verdict of a counter a shared store stepped
      atomically (several processes, one counter); when given it replaces the state's check.
    """

    is_template: bool
    template_category: Category | None = None
    template_status: str | None = None
    template_paused_until: datetime | None = None
    recipient_country: str | None = None
    business_country: str | None = None
    last_inbound_at: datetime | None = None
    entry_point: EntryPoint | None = None
    consent: ConsentStatus = ConsentStatus.UNKNOWN
    customer_blocked_business: bool = False
    business_blocked_customer: bool = False
    marketing_received: tuple[datetime, ...] = ()
    usage: TierFacts = field(default_factory=TierFacts)
    throughput_level: ThroughputLevel = ThroughputLevel.STANDARD
    throughput_state: CounterState = field(default_factory=CounterState)
    pair_state: CounterState = field(default_factory=CounterState)
    throughput_verdict: CounterVerdict | None = None
    pair_verdict: CounterVerdict | None = None


@dataclass(frozen=True)
class Limits:
    """The operator's numbers (defaults follow Meta's where Meta publishes them)."""

    windows: WindowLengths = field(default_factory=WindowLengths)
    marketing_cap: MarketingCap | None = field(default_factory=MarketingCap)
    marketing_blocked_countries: frozenset[str] = frozenset()
    tier_period: timedelta = LIMIT_PERIOD
    throughput: ThroughputLimits = field(default_factory=ThroughputLimits)
    pair_rate: RateLimit = PAIR_RATE
    rate_card: RateCard = DEFAULT_RATE_CARD
    authentication_international_countries: frozenset[str] = AUTHENTICATION_INTERNATIONAL_COUNTRIES


@dataclass(frozen=True)
class Decision:
    allowed: bool
    category: Category
    reasons: tuple[Reason, ...]
    window: WindowState
    now: datetime
    charge: Charge | None = None  # the pricing outcome of an allowed send
    counts_toward_limit: bool = False  # record this customer as reached outside a window
    opens_entry_point: bool = False  # this send is the first answer: record it to open FEP
    throughput_state: CounterState = field(default_factory=CounterState)
    pair_state: CounterState = field(default_factory=CounterState)

    @property
    def primary(self) -> Reason | None:
        return self.reasons[0] if self.reasons else None

    @property
    def reporting(self) -> Reporting | None:
        """How Meta would surface the primary reason (HTTP error or `failed` webhook)."""
        primary = self.primary
        return None if primary is None else primary.reporting

    def first(self, reporting: Reporting) -> Reason | None:
        return next((r for r in self.reasons if r.reporting is reporting), None)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(r.rule for r in self.reasons)

    @property
    def retry_at(self) -> datetime | None:
        """The earliest time the same send could pass: `now` when allowed, None when waiting
        alone will not do (the customer must write, opt back in, unblock...)."""
        if self.allowed:
            return self.now
        waits = [r.retry_after for r in self.reasons]
        if any(w is None for w in waits):
            return None
        return self.now + timedelta(seconds=max(w for w in waits if w is not None))

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form, e.g. for a preflight answer."""
        retry_at = self.retry_at
        return {
            "allowed": self.allowed,
            "category": str(self.category),
            "reasons": [r.to_dict() for r in self.reasons],
            "retry_at": None if retry_at is None else retry_at.isoformat(),
            "customer_service_window_open": self.window.csw_open,
            "free_entry_point_window_open": self.window.fep_open or self.window.fep_opens_now,
            "pricing": None
            if self.charge is None
            else {
                "billable": self.charge.billable,
                "type": str(self.charge.type),
                "category": str(self.charge.category),
                "amount": str(self.charge.amount),
                "currency": self.charge.currency,
            },
        }


def check_template(
    status: str | None, paused_until: datetime | None, now: datetime
) -> Reason | None:
    if status is None:
        return None
    normalized = status.upper()
    if normalized == "DISABLED":
        return reason(
            Rule.TEMPLATE, MetaCode.TEMPLATE_DISABLED, "The template is disabled after low quality."
        )
    if normalized == "PAUSED" and (paused_until is None or now < paused_until):
        retry = None if paused_until is None else (paused_until - now).total_seconds()
        return reason(
            Rule.TEMPLATE,
            MetaCode.TEMPLATE_PAUSED,
            "The template is paused for low quality.",
            retry,
        )
    return None


def _checks(
    facts: SendFacts, limits: Limits, now: datetime, category: Category, window: WindowState
) -> Iterator[Reason | None]:
    """The reasons of every rule, in RULE_ORDER (None where a rule passes)."""
    yield check_template(facts.template_status, facts.template_paused_until, now)
    yield check_window(category, window)
    yield from check_blocks(facts.customer_blocked_business, facts.business_blocked_customer)
    yield check_consent(category, facts.consent)
    yield check_marketing_country(
        category, facts.recipient_country, limits.marketing_blocked_countries
    )
    yield check_marketing_cap(
        category, facts.marketing_received, limits.marketing_cap, now, window.csw_open
    )
    if facts.is_template:
        yield check_tier(window.csw_open, facts.usage, now, limits.tier_period)


def evaluate(facts: SendFacts, limits: Limits, now: datetime) -> Decision:
    """Apply every rule to one send at `now`."""
    category = category_of(facts.is_template, facts.template_category)
    window = window_state(facts.last_inbound_at, facts.entry_point, now, limits.windows)
    reasons = [r for r in _checks(facts, limits, now, category, window) if r is not None]

    throughput_limit = limits.throughput.for_level(facts.throughput_level)
    throughput_refusal, throughput = check_throughput(facts.throughput_state, throughput_limit, now)
    if facts.throughput_verdict is not None:
        verdict = facts.throughput_verdict
        throughput_refusal = (
            None if verdict.allowed else throughput_reason(throughput_limit, verdict.retry_after)
        )
    pair_refusal, pair = check_pair_rate(facts.pair_state, limits.pair_rate, now)
    if facts.pair_verdict is not None:
        verdict = facts.pair_verdict
        pair_refusal = None if verdict.allowed else pair_rate_reason(verdict.retry_after)
    reasons.extend(r for r in (throughput_refusal, pair_refusal) if r is not None)

    if reasons:
        return Decision(
            allowed=False,
            category=category,
            reasons=tuple(reasons),
            window=window,
            now=now,
            throughput_state=facts.throughput_state,
            pair_state=facts.pair_state,
        )
    charge = charge_for(
        category,
        window,
        facts.recipient_country,
        limits.rate_card,
        facts.business_country,
        limits.authentication_international_countries,
    )
    return Decision(
        allowed=True,
        category=category,
        reasons=(),
        window=window,
        now=now,
        charge=charge,
        counts_toward_limit=facts.is_template and is_new_unit(window.csw_open, facts.usage),
        opens_entry_point=window.fep_opens_now,
        throughput_state=throughput.state,
        pair_state=pair.state,
    )
