"""The pure messaging policy core: categories, windows, consent, caps, tiers, throughput,
quality and pricing. No I/O and no clock: facts and `now` come in, decisions go out.

    decision = evaluate(facts, limits, now)

See docs/policy.md for the rules, their numbers and codes, and the evaluation order.
"""

from __future__ import annotations

from tidings.policy.caps import MarketingCap
from tidings.policy.categories import Category, PricingCategory
from tidings.policy.consent import (
    ConsentAction,
    ConsentEvent,
    ConsentSource,
    ConsentState,
    ConsentStatus,
    KeywordAction,
    KeywordMatch,
    confirmation_text,
    consent_state,
    detect_keyword,
)
from tidings.policy.evaluate import RULE_ORDER, Decision, Limits, SendFacts, evaluate
from tidings.policy.pricing import (
    DEFAULT_RATE_CARD,
    Charge,
    PricingType,
    RateCard,
    conversation_object,
    pricing_object,
)
from tidings.policy.quality import Quality, Signal, SignalKind, phone_quality, template_quality
from tidings.policy.reasons import MetaCode, Reason, Reporting, Rule
from tidings.policy.throughput import (
    CounterState,
    CounterVerdict,
    GcraResult,
    RateLimit,
    ThroughputLevel,
    gcra,
)
from tidings.policy.tiers import Tier, TierFacts, TierUpgrade, scale_up
from tidings.policy.window import EntryPoint, WindowState, window_state

__all__ = [
    "DEFAULT_RATE_CARD",
    "RULE_ORDER",
    "Category",
    "Charge",
    "ConsentAction",
    "ConsentEvent",
    "ConsentSource",
    "ConsentState",
    "ConsentStatus",
    "CounterState",
    "CounterVerdict",
    "Decision",
    "EntryPoint",
    "GcraResult",
    "KeywordAction",
    "KeywordMatch",
    "Limits",
    "MarketingCap",
    "MetaCode",
    "PricingCategory",
    "PricingType",
    "Quality",
    "RateCard",
    "RateLimit",
    "Reason",
    "Reporting",
    "Rule",
    "SendFacts",
    "Signal",
    "SignalKind",
    "ThroughputLevel",
    "Tier",
    "TierFacts",
    "TierUpgrade",
    "WindowState",
    "confirmation_text",
    "consent_state",
    "conversation_object",
    "detect_keyword",
    "evaluate",
    "gcra",
    "phone_quality",
    "pricing_object",
    "scale_up",
    "template_quality",
    "window_state",
]
