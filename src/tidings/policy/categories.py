"""Message categories: what a send is, for policy and for pricing.

A template carries its category (MARKETING, UTILITY or AUTHENTICATION); a free-form message is
SERVICE (it can only be sent inside the customer service window). Pricing splits
AUTHENTICATION further: an authentication template to a customer in a country with
authentication-international rates, from a business based elsewhere, is priced as
AUTHENTICATION_INTERNATIONAL.
"""

from __future__ import annotations

from collections.abc import Set
from enum import StrEnum


class Category(StrEnum):
    MARKETING = "MARKETING"
    UTILITY = "UTILITY"
    AUTHENTICATION = "AUTHENTICATION"
    SERVICE = "SERVICE"


class PricingCategory(StrEnum):
    """The `pricing.category` values of status webhooks (lower case, as Meta sends them)."""

    MARKETING = "marketing"
    UTILITY = "utility"
    AUTHENTICATION = "authentication"
    AUTHENTICATION_INTERNATIONAL = "authentication_international"
    SERVICE = "service"
    REFERRAL_CONVERSION = "referral_conversion"


TEMPLATE_CATEGORIES: frozenset[Category] = frozenset(
    {Category.MARKETING, Category.UTILITY, Category.AUTHENTICATION}
)

# Countries (ISO 3166 alpha-2) where Meta charges authentication-international rates to
# businesses based elsewhere. Operator-configurable through `Limits`; this is the default.
AUTHENTICATION_INTERNATIONAL_COUNTRIES: frozenset[str] = frozenset(
    {"EG", "ID", "IN", "MY", "NG", "PK", "SA", "ZA", "AE"}
)


class UnknownCategory(ValueError):
    pass


def template_category(raw: str) -> Category:
    """Parse a template's category ("MARKETING", "utility", ...); SERVICE is not one."""
    try:
        category = Category(raw.strip().upper())
    except ValueError as exc:
        raise UnknownCategory(f"{raw!r} is not a template category") from exc
    if category not in TEMPLATE_CATEGORIES:
        raise UnknownCategory(f"{raw!r} is not a template category")
    return category


def category_of(is_template: bool, template_category: Category | None) -> Category:
    """The category of a send: the template's own, or SERVICE for a free-form message."""
    if not is_template:
        return Category.SERVICE
    if template_category is None or template_category not in TEMPLATE_CATEGORIES:
        raise UnknownCategory("a template send needs its template's category")
    return template_category


def pricing_category(
    category: Category,
    recipient_country: str | None,
    business_country: str | None,
    international_countries: Set[str] = AUTHENTICATION_INTERNATIONAL_COUNTRIES,
) -> PricingCategory:
    """The category a delivered message is priced (and reported) as.

    Authentication becomes authentication-international only when both countries are known,
    differ, and the recipient's country is one with international rates.
    """
    if category is Category.AUTHENTICATION:
        if (
            recipient_country is not None
            and business_country is not None
            and recipient_country.upper() != business_country.upper()
            and recipient_country.upper() in international_countries
        ):
            return PricingCategory.AUTHENTICATION_INTERNATIONAL
        return PricingCategory.AUTHENTICATION
    return PricingCategory(category.value.lower())
