"""Pricing matrix: category x window x country, webhook pricing/conversation objects."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from tidings.policy.categories import (
    Category,
    PricingCategory,
    UnknownCategory,
    category_of,
    pricing_category,
    template_category,
)
from tidings.policy.pricing import (
    DEFAULT_RATE_CARD,
    Charge,
    PricingType,
    RateCard,
    amount_due,
    charge_for,
    conversation_object,
    cost_totals,
    country_for_phone,
    pricing_object,
)
from tidings.policy.rates import DEFAULT_RATES
from tidings.policy.window import EntryPoint, WindowState, window_state

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
NO_WINDOW = window_state(None, None, NOW)
IN_CSW = window_state(NOW - H, None, NOW)
IN_FEP = window_state(NOW - 30 * H, EntryPoint(NOW - 30 * H, NOW - 29 * H), NOW)
FEP_OPENS = window_state(NOW - H, EntryPoint(NOW - H), NOW)

C = Category
P = PricingCategory
FREE_CS = PricingType.FREE_CUSTOMER_SERVICE
FREE_EP = PricingType.FREE_ENTRY_POINT
REG = PricingType.REGULAR


@pytest.mark.parametrize(
    ("category", "window", "country", "type_", "priced_as", "amount"),
    [
        (C.MARKETING, NO_WINDOW, "BR", REG, P.MARKETING, "0.0625"),
        (C.MARKETING, IN_CSW, "BR", REG, P.MARKETING, "0.0625"),  # marketing is never free
        (C.UTILITY, NO_WINDOW, "US", REG, P.UTILITY, "0.0040"),
        (C.UTILITY, IN_CSW, "US", FREE_CS, P.UTILITY, "0"),  # utility free in the window
        (C.AUTHENTICATION, NO_WINDOW, "DE", REG, P.AUTHENTICATION, "0.0768"),
        (C.AUTHENTICATION, IN_CSW, "DE", REG, P.AUTHENTICATION, "0.0768"),
        (C.SERVICE, IN_CSW, "DE", FREE_CS, P.SERVICE, "0"),
        (C.MARKETING, IN_FEP, "BR", FREE_EP, P.REFERRAL_CONVERSION, "0"),  # all free in FEP
        (C.UTILITY, IN_FEP, "BR", FREE_EP, P.REFERRAL_CONVERSION, "0"),
        (C.SERVICE, FEP_OPENS, "BR", FREE_EP, P.REFERRAL_CONVERSION, "0"),
        (C.MARKETING, NO_WINDOW, "KE", REG, P.MARKETING, "0.0604"),  # default row
        (C.MARKETING, NO_WINDOW, None, REG, P.MARKETING, "0.0604"),
        (C.UTILITY, NO_WINDOW, "in", REG, P.UTILITY, "0.0014"),  # case-insensitive country
    ],
)
def test_pricing_matrix(
    category: Category,
    window: WindowState,
    country: str | None,
    type_: PricingType,
    priced_as: PricingCategory,
    amount: str,
) -> None:
    charge = charge_for(category, window, country)
    assert charge.type is type_
    assert charge.category is priced_as
    assert charge.amount == Decimal(amount)
    assert charge.billable is (type_ is REG)
    assert charge.currency == "USD"


@pytest.mark.parametrize(
    ("country", "business", "priced_as", "amount"),
    [
        ("IN", "US", P.AUTHENTICATION_INTERNATIONAL, "0.0280"),
        ("IN", "IN", P.AUTHENTICATION, "0.0014"),
        ("IN", None, P.AUTHENTICATION, "0.0014"),
        ("ID", "SG", P.AUTHENTICATION_INTERNATIONAL, "0.1360"),
        ("EG", "US", P.AUTHENTICATION_INTERNATIONAL, "0.0300"),  # default row's intl rate
        ("US", "IN", P.AUTHENTICATION, "0.0040"),  # US has no intl rates
    ],
)
def test_authentication_international(
    country: str, business: str | None, priced_as: PricingCategory, amount: str
) -> None:
    charge = charge_for(C.AUTHENTICATION, NO_WINDOW, country, business_country=business)
    assert charge.category is priced_as
    assert charge.amount == Decimal(amount)


def test_categories() -> None:
    assert category_of(False, None) is C.SERVICE
    assert category_of(True, C.UTILITY) is C.UTILITY
    with pytest.raises(UnknownCategory):
        category_of(True, None)
    with pytest.raises(UnknownCategory):
        category_of(True, C.SERVICE)
    assert template_category(" marketing ") is C.MARKETING
    for bad in ("SERVICE", "promo"):
        with pytest.raises(UnknownCategory):
            template_category(bad)
    assert pricing_category(C.MARKETING, "IN", "US") is P.MARKETING
    assert pricing_category(C.AUTHENTICATION, "IN", "US", frozenset()) is P.AUTHENTICATION


def test_amount_due_only_when_delivered() -> None:
    charge = charge_for(C.MARKETING, NO_WINDOW, "BR")
    assert amount_due(charge, delivered=False) == 0
    assert amount_due(charge, delivered=True) == Decimal("0.0625")
    free = charge_for(C.SERVICE, IN_CSW, "BR")
    assert amount_due(free, delivered=True) == 0


def test_pricing_object() -> None:
    assert pricing_object(charge_for(C.UTILITY, IN_CSW, "US")) == {
        "billable": False,
        "pricing_model": "PMP",
        "type": "free_customer_service",
        "category": "utility",
    }
    assert pricing_object(charge_for(C.MARKETING, NO_WINDOW, "US")) == {
        "billable": True,
        "pricing_model": "PMP",
        "type": "regular",
        "category": "marketing",
    }
    assert pricing_object(charge_for(C.MARKETING, IN_FEP, "US"))["type"] == "free_entry_point"


def test_conversation_object() -> None:
    regular = charge_for(C.MARKETING, NO_WINDOW, "US")
    assert conversation_object("c1", regular, NO_WINDOW, 23, with_expiration=True) == {
        "id": "c1",
        "origin": {"type": "marketing"},
        "expiration_timestamp": str(int((NOW + 24 * H).timestamp())),
    }
    assert conversation_object("c1", regular, NO_WINDOW, 23, with_expiration=False) == {
        "id": "c1",
        "origin": {"type": "marketing"},
    }
    assert conversation_object("c1", regular, NO_WINDOW, 24, with_expiration=True) is None
    service = charge_for(C.SERVICE, IN_CSW, "US")
    value = conversation_object("c2", service, IN_CSW, 23, with_expiration=True)
    assert value is not None
    assert value["expiration_timestamp"] == str(int((NOW + 23 * H).timestamp()))
    fep = charge_for(C.MARKETING, IN_FEP, "US")
    value = conversation_object("c3", fep, IN_FEP, 24, with_expiration=True)
    assert value == {
        "id": "c3",
        "origin": {"type": "referral_conversion"},
        "expiration_timestamp": str(int((NOW - 29 * H + 72 * H).timestamp())),
    }


def test_rate_card_from_config() -> None:
    card = RateCard.from_config(
        {"default": {"marketing": 0.1, "utility": 0.01}, "br": {"MARKETING": 0.07}}, "EUR"
    )
    assert card.price(P.MARKETING, "BR") == Decimal("0.07")
    assert card.price(P.UTILITY, "BR") == Decimal("0.01")  # falls back to default
    assert card.price(P.MARKETING, "FR") == Decimal("0.1")
    assert card.price(P.SERVICE, "FR") == 0
    assert card.price(P.REFERRAL_CONVERSION, "FR") == 0
    with pytest.raises(KeyError):
        card.price(P.AUTHENTICATION, "FR")
    with pytest.raises(ValueError):
        RateCard.from_config({"BR": {"marketing": 1}})
    with pytest.raises(ValueError):
        RateCard.from_config({"default": {"marketing": -1}})
    with pytest.raises(ValueError):
        RateCard.from_config({"default": {"promo": 1}})


def test_default_card_shape() -> None:
    countries = [k for k in DEFAULT_RATES if k != "default"]
    assert len(countries) >= 12
    for country in countries:
        for category in (P.MARKETING, P.UTILITY, P.AUTHENTICATION):
            price = DEFAULT_RATE_CARD.price(category, country)
            assert Decimal("0") < price < Decimal("1")
        # marketing is the dearest category everywhere
        assert DEFAULT_RATE_CARD.price(P.MARKETING, country) >= DEFAULT_RATE_CARD.price(
            P.UTILITY, country
        )


@pytest.mark.parametrize(
    ("number", "country"),
    [
        ("+5511987654321", "BR"),
        ("5511987654321", "BR"),
        ("+15550100001", "US"),
        ("+919876543210", "IN"),
        ("+4915123456789", "DE"),
        ("+447700900123", "GB"),
        ("+447911123456", "GB"),  # Guernsey: priced by calling code
        ("+16135550123", "US"),
        ("not a number", None),
    ],
)
def test_country_for_phone(number: str, country: str | None) -> None:
    assert country_for_phone(number) == country


def test_a_days_cost_matches_the_rate_card() -> None:
    day = date(2026, 3, 2)
    sends = [
        (C.MARKETING, NO_WINDOW, "BR", True),
        (C.MARKETING, NO_WINDOW, "BR", True),
        (C.MARKETING, NO_WINDOW, "BR", False),  # never delivered: free
        (C.UTILITY, NO_WINDOW, "US", True),
        (C.UTILITY, IN_CSW, "US", True),  # free in window
        (C.SERVICE, IN_CSW, "US", True),
        (C.AUTHENTICATION, NO_WINDOW, "IN", True),
    ]
    charges: list[tuple[Charge, bool]] = [
        (charge_for(c, w, country), delivered) for c, w, country, delivered in sends
    ]
    totals = cost_totals((day, ch.category, amount_due(ch, d)) for ch, d in charges)
    assert totals[(day, P.MARKETING)] == Decimal("0.1250")
    assert totals[(day, P.UTILITY)] == Decimal("0.0040")
    assert totals[(day, P.SERVICE)] == 0
    assert totals[(day, P.AUTHENTICATION)] == Decimal("0.0014")
    assert sum(totals.values()) == Decimal("0.1304")
