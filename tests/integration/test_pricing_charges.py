"""Pricing through the runtime's policy gate and billing, on a real database: charges fixed
at the send, due only once delivered, totals per day and category that match the rate card,
and the operator's own rate card."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from limits_support import provision, send, template

from tidings.config import Settings
from tidings.kit.clock import FrozenClock
from tidings.policy.categories import Category, PricingCategory
from tidings.policy.pricing import DEFAULT_RATE_CARD
from tidings.runtime import build_runtime

BUSINESS = "+15550109999"
BRAZIL = ["+5511900000001", "+5511900000002", "+5511900000003"]
GERMANY = "+4915112345678"
US = "+12025550123"


@pytest.fixture
async def runtime(settings: Settings, clock: FrozenClock):
    made = build_runtime(settings, clock=clock)
    yield made
    await made.close()


async def status(runtime, wamid: str, name: str):  # type: ignore[no-untyped-def]
    async with runtime.database.unit_of_work() as uow:
        [pricing] = await runtime.billing.on_statuses(
            uow.session, [(wamid, name)], runtime.clock.now()
        )
        return pricing


def price(category: PricingCategory, country: str) -> Decimal:
    return DEFAULT_RATE_CARD.price(category, country)


async def test_a_days_traffic_costs_what_the_rate_card_says(runtime, clock) -> None:
    clock.set(datetime(2026, 3, 10, 9, 0, tzinfo=UTC))
    phone = await provision(runtime, BUSINESS)
    sends = [
        ("m1", BRAZIL[0], Category.MARKETING),
        ("m2", BRAZIL[1], Category.MARKETING),
        ("m3", BRAZIL[2], Category.MARKETING),
        ("u1", BRAZIL[0], Category.UTILITY),
        ("u2", BRAZIL[1], Category.UTILITY),
        ("a1", US, Category.AUTHENTICATION),
        ("undelivered", GERMANY, Category.MARKETING),
    ]
    for wamid, customer, category in sends:
        decision = await send(runtime, phone, customer, use=template(category), wamid=wamid)
        assert decision.allowed and decision.charge is not None and decision.charge.billable
        clock.advance(seconds=1)
    # "sent" reports the pricing but nothing is due before delivery.
    assert await status(runtime, "m1", "sent") == {
        "billable": True,
        "pricing_model": "PMP",
        "type": "regular",
        "category": "marketing",
    }
    assert await runtime.billing.daily_costs(phone.business_id, clock.now(), clock.now()
                                             + timedelta(hours=1)) == []  # fmt: skip
    for wamid in ("m1", "m2", "u1", "u2", "a1"):
        await status(runtime, wamid, "delivered")
    await status(runtime, "m3", "read")  # a read can come without a delivered
    await status(runtime, "m1", "read")  # delivered once only
    clock.set(datetime(2026, 3, 11, 0, 0, 1, tzinfo=UTC))
    await status(runtime, "m2", "delivered")  # again, the next day: still counted on the 10th
    late = await send(runtime, phone, GERMANY, use=template(Category.MARKETING), wamid="late")
    assert late.allowed
    await status(runtime, "late", "delivered")
    # A message without a stored charge (a free-form answer before the gate) has no pricing.
    assert await status(runtime, "wamid.unknown", "delivered") is None

    lines = await runtime.billing.daily_costs(
        phone.business_id,
        datetime(2026, 3, 10, 12, tzinfo=UTC),
        datetime(2026, 3, 11, 12, tzinfo=UTC),
    )
    got = {
        (line.day.isoformat(), line.pricing_category): (line.volume, line.cost) for line in lines
    }
    expected = {
        ("2026-03-10", "marketing"): (3, 3 * price(PricingCategory.MARKETING, "BR")),
        ("2026-03-10", "utility"): (2, 2 * price(PricingCategory.UTILITY, "BR")),
        ("2026-03-10", "authentication"): (1, price(PricingCategory.AUTHENTICATION, "US")),
        ("2026-03-11", "marketing"): (1, price(PricingCategory.MARKETING, "DE")),
    }
    assert got == expected
    assert {line.pricing_type for line in lines} == {"regular"}
    assert {line.currency for line in lines} == {"USD"}
    # Only the first day asked: whole UTC days covering the range.
    first_day = await runtime.billing.daily_costs(
        phone.business_id,
        datetime(2026, 3, 10, 23, tzinfo=UTC),
        datetime(2026, 3, 11, tzinfo=UTC),
    )
    assert {line.day.isoformat() for line in first_day} == {"2026-03-10"}


async def test_free_form_sends_are_free_service_messages(runtime) -> None:
    phone = await provision(runtime, BUSINESS)
    decision = await send(runtime, phone, BRAZIL[0], free_form=True, wamid="free")
    # Outside the window a free-form send is refused (and never charged)...
    assert not decision.allowed and decision.charge is None
    assert await status(runtime, "free", "delivered") is None


async def test_another_businesss_costs_are_not_counted(runtime, clock) -> None:
    phone = await provision(runtime, BUSINESS)
    other = await provision(runtime, "+15550108888", name="Other Shop")
    await send(runtime, other, BRAZIL[0], wamid="theirs")
    await status(runtime, "theirs", "delivered")
    lines = await runtime.billing.daily_costs(
        phone.business_id, clock.now() - timedelta(days=1), clock.now() + timedelta(days=1)
    )
    assert lines == []


async def test_the_operators_rate_card_from_settings(settings: Settings, clock) -> None:
    configured = settings.model_copy(
        update={
            "pricing": settings.pricing.model_copy(
                update={
                    "currency": "BRL",
                    "rates": {
                        "default": {"marketing": "0.50", "utility": 0.1, "authentication": "0.2"},
                        "br": {"marketing": "0.3125"},
                    },
                }
            )
        }
    )
    runtime = build_runtime(configured, clock=clock)
    try:
        phone = await provision(runtime, BUSINESS)
        for wamid, customer in (("br", BRAZIL[0]), ("de", GERMANY)):
            decision = await send(
                runtime, phone, customer, use=template(Category.MARKETING), wamid=wamid
            )
            assert decision.charge is not None and decision.charge.currency == "BRL"
            await status(runtime, wamid, "delivered")
        lines = await runtime.billing.daily_costs(
            phone.business_id, clock.now() - timedelta(days=1), clock.now() + timedelta(days=1)
        )
        total: dict[str, Decimal] = defaultdict(Decimal)
        for line in lines:
            total[line.currency] += line.cost
        assert total == {"BRL": Decimal("0.8125")}
    finally:
        await runtime.close()


def test_a_rate_card_file_is_read(settings: Settings, tmp_path: Path) -> None:
    card = tmp_path / "rates.toml"
    card.write_text('[default]\nmarketing = "0.07"\nutility = "0.02"\nauthentication = "0.03"\n')
    configured = settings.model_copy(
        update={"pricing": settings.pricing.model_copy(update={"rate_card_file": card})}
    )
    from tidings.runtime import build_limits

    limits = build_limits(configured)
    assert limits.rate_card.price(PricingCategory.MARKETING, "BR") == Decimal("0.07")


@pytest.mark.parametrize(
    ("currency", "rates", "problem"),
    [
        ("USD", {"default": {"marketing": "-0.01"}}, "negative"),
        ("USD", {"default": {"marketting": "0.01"}}, "marketting"),
        ("USD", {"BR": {"marketing": "0.01"}}, "default"),
        ("USD", {"default": {"marketing": "0.0000001"}}, "6 decimal places"),
        ("EUR", None, "default rate card is in USD"),
    ],
)
def test_a_bad_rate_card_is_refused_at_start_up(
    settings: Settings, currency: str, rates, problem: str
) -> None:
    from tidings.runtime import build_limits

    configured = settings.model_copy(
        update={
            "pricing": settings.pricing.model_copy(update={"currency": currency, "rates": rates})
        }
    )
    with pytest.raises(ValueError, match=problem):
        build_limits(configured)
