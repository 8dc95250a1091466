"""Pricing: a rate card per category and recipient country, and the webhook objects.

Per-message pricing (Meta's PMP since July 2025):

- Only delivered templates are charged (`amount_due` is 0 until the message is delivered).
- Free-form messages (SERVICE) are free: they can only be sent inside the customer service
  window (`type: free_customer_service`, `category: service`).
- Utility templates inside the customer service window are free (`free_customer_service`).
- Everything inside a free entry point window is free (`free_entry_point`, category
  `referral_conversion`).
- Anything else is `regular`, priced from the card by pricing category and recipient country;
  unknown countries use the card's default row.

The default card (`tidings.policy.rates`) is illustrative, not Meta's prices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from types import MappingProxyType

import phonenumbers

from tidings.policy.categories import (
    AUTHENTICATION_INTERNATIONAL_COUNTRIES,
    Category,
    PricingCategory,
    pricing_category,
)
from tidings.policy.rates import DEFAULT_RATES
from tidings.policy.window import WindowState

ZERO = Decimal("0")
FREE_CATEGORIES: frozenset[PricingCategory] = frozenset(
    {PricingCategory.SERVICE, PricingCategory.REFERRAL_CONVERSION}
)


class PricingType(StrEnum):
    REGULAR = "regular"
    FREE_CUSTOMER_SERVICE = "free_customer_service"
    FREE_ENTRY_POINT = "free_entry_point"


Rates = Mapping[PricingCategory, Decimal]


@dataclass(frozen=True)
class RateCard:
    """Prices per delivered message: `rates[country][category]`, else `default[category]`."""

    currency: str
    default: Rates
    rates: Mapping[str, Rates] = field(default_factory=dict)

    def price(self, category: PricingCategory, country: str | None) -> Decimal:
        if category in FREE_CATEGORIES:
            return ZERO
        row = self.rates.get(country.upper()) if country else None
        if row is not None and category in row:
            return row[category]
        if category in self.default:
            return self.default[category]
        if category is PricingCategory.AUTHENTICATION_INTERNATIONAL:
            return self.price(PricingCategory.AUTHENTICATION, country)
        raise KeyError(f"the rate card has no price for {category}")

    @classmethod
    def from_config(
        cls, data: Mapping[str, Mapping[str, str | float | int]], currency: str = "USD"
    ) -> RateCard:
        """Build a card from plain data: {"default": {"marketing": "0.05", ...}, "BR": {...}}.

        Prices go through `str` so that floats from a config file become exact decimals.
        """
        if "default" not in data:
            raise ValueError("a rate card needs a 'default' row")

        def row(prices: Mapping[str, str | float | int]) -> Rates:
            parsed = {PricingCategory(k.lower()): Decimal(str(v)) for k, v in prices.items()}
            if any(v < 0 for v in parsed.values()):
                raise ValueError("prices cannot be negative")
            return MappingProxyType(parsed)

        rates = {k.upper(): row(v) for k, v in data.items() if k != "default"}
        return cls(currency, row(data["default"]), MappingProxyType(rates))


DEFAULT_RATE_CARD = RateCard.from_config(DEFAULT_RATES)


@dataclass(frozen=True)
class Charge:
    """The pricing outcome of one send (what it costs once delivered)."""

    billable: bool
    type: PricingType
    category: PricingCategory
    amount: Decimal
    currency: str
    country: str | None = None


def charge_for(
    category: Category,
    window: WindowState,
    recipient_country: str | None,
    card: RateCard = DEFAULT_RATE_CARD,
    business_country: str | None = None,
    international_countries: Set[str] = AUTHENTICATION_INTERNATIONAL_COUNTRIES,
) -> Charge:
    currency = card.currency
    if window.fep_open or window.fep_opens_now:
        return Charge(
            False,
            PricingType.FREE_ENTRY_POINT,
            PricingCategory.REFERRAL_CONVERSION,
            ZERO,
            currency,
            recipient_country,
        )
    if category is Category.SERVICE:
        return Charge(
            False,
            PricingType.FREE_CUSTOMER_SERVICE,
            PricingCategory.SERVICE,
            ZERO,
            currency,
            recipient_country,
        )
    if category is Category.UTILITY and window.csw_open:
        return Charge(
            False,
            PricingType.FREE_CUSTOMER_SERVICE,
            PricingCategory.UTILITY,
            ZERO,
            currency,
            recipient_country,
        )
    priced = pricing_category(
        category, recipient_country, business_country, international_countries
    )
    amount = card.price(priced, recipient_country)
    return Charge(True, PricingType.REGULAR, priced, amount, currency, recipient_country)


def amount_due(charge: Charge, delivered: bool) -> Decimal:
    """What a send costs: its price once delivered if billable, else nothing."""
    return charge.amount if delivered and charge.billable else ZERO


def pricing_object(charge: Charge) -> dict[str, object]:
    """`statuses[].pricing` of a status webhook."""
    return {
        "billable": charge.billable,
        "pricing_model": "PMP",
        "type": str(charge.type),
        "category": str(charge.category),
    }


def conversation_expiry(charge: Charge, window: WindowState) -> datetime:
    """When the conversation a send belongs to expires: the FEP window's end, the open
    customer service window's end, otherwise 24 hours after the send."""
    if charge.type is PricingType.FREE_ENTRY_POINT and window.fep_expires_at is not None:
        return window.fep_expires_at
    if window.csw_open and window.csw_expires_at is not None:
        return window.csw_expires_at
    return window.at + timedelta(hours=24)


def conversation_object(
    conversation_id: str,
    charge: Charge,
    window: WindowState,
    api_version: int,
    with_expiration: bool,
) -> dict[str, object] | None:
    """`statuses[].conversation`, or None when it is omitted.

    From v24.0 Meta omits it unless the message is in a free entry point window. The
    `expiration_timestamp` (unix seconds as a string) appears only on the `sent` status.
    """
    free_entry = charge.type is PricingType.FREE_ENTRY_POINT
    if api_version >= 24 and not free_entry:
        return None
    origin = "referral_conversion" if free_entry else str(charge.category)
    value: dict[str, object] = {"id": conversation_id, "origin": {"type": origin}}
    if with_expiration:
        value["expiration_timestamp"] = str(int(conversation_expiry(charge, window).timestamp()))
    return value


@lru_cache(maxsize=65_536)  # pure, and every send asks it for both ends
def country_for_phone(e164: str) -> str | None:
    """The pricing country of an E.164 number (or a wa_id without '+'), None when unknown.

    Meta prices by the recipient's country calling code, so numbers sharing a code use the
    code's main country: +1 is US (Canada too), +44 is GB (Guernsey too), +7 is RU.
    """
    text = e164 if e164.startswith("+") else f"+{e164}"
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if parsed.country_code is None:
        return None
    region = phonenumbers.region_code_for_country_code(parsed.country_code)
    return None if region in (None, "ZZ", "001") else str(region)


def cost_totals(
    items: Iterable[tuple[date, PricingCategory, Decimal]],
) -> dict[tuple[date, PricingCategory], Decimal]:
    """Sum delivered costs per (day, pricing category)."""
    totals: dict[tuple[date, PricingCategory], Decimal] = {}
    for day, category, amount in items:
        totals[(day, category)] = totals.get((day, category), ZERO) + amount
    return totals
