"""Charges for delivered messages, and what a business's traffic cost per day and category.

The price of a send is decided with its policy decision (`tidings.policy.pricing.charge_for`:
rate card, category, recipient country, windows) and stored with the message; it becomes due
when the message is delivered (Meta's per-message pricing charges delivered templates only).
"""

from __future__ import annotations

import json
import tomllib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.billing.repository import BillingRepository
from tidings.business.service import PhoneInfo
from tidings.db.uow import Database
from tidings.errors import ValidationFailed
from tidings.policy.categories import PricingCategory
from tidings.policy.pricing import (
    DEFAULT_RATE_CARD,
    Charge,
    PricingType,
    RateCard,
    pricing_object,
)

MICROS = Decimal(1_000_000)
DELIVERED = frozenset({"delivered", "read"})  # a read can come without a delivered
MAX_RANGE = timedelta(days=366)


def to_micros(amount: Decimal) -> int:
    return int((amount * MICROS).to_integral_value())


def from_micros(micros: int) -> Decimal:
    return (Decimal(micros) / MICROS).normalize() if micros else Decimal("0")


@dataclass(frozen=True)
class CostLine:
    """Delivered messages of one day, pricing category and type: how many, what they cost."""

    day: date
    pricing_category: str
    pricing_type: str
    volume: int
    cost: Decimal
    currency: str
    # Filled only when asked for by country and number (`daily_costs(..., detail=True)`).
    country: str | None = None
    phone_id: int | None = None

    @property
    def start(self) -> datetime:
        return datetime.combine(self.day, time(), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=1)


def day_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """Whole UTC days covering [start, end)."""
    if end <= start:
        raise ValidationFailed("the end of the range must come after its start")
    if end - start > MAX_RANGE:
        raise ValidationFailed("the range can cover at most 366 days")
    first = datetime.combine(start.astimezone(UTC).date(), time(), tzinfo=UTC)
    last = datetime.combine(end.astimezone(UTC).date(), time(), tzinfo=UTC)
    return first, last if last == end else last + timedelta(days=1)


class Billing:
    def __init__(self, *, database: Database) -> None:
        self._database = database

    # -- inside a send's or a status's transaction -----------------------------------------

    async def record_charge(
        self, session: AsyncSession, phone: PhoneInfo, wamid: str, charge: Charge, at: datetime
    ) -> None:
        await BillingRepository(session).insert(
            business_id=phone.business_id,
            phone_id=phone.phone_pk,
            wamid=wamid,
            country=charge.country,
            pricing_category=str(charge.category),
            pricing_type=str(charge.type),
            billable=charge.billable,
            amount_micros=to_micros(charge.amount) if charge.billable else 0,
            currency=charge.currency,
            accepted_at=at,
            delivered_at=None,
        )

    async def on_statuses(
        self, session: AsyncSession, changes: Sequence[tuple[str, str]], at: datetime
    ) -> list[dict[str, Any] | None]:
        """For each (wamid, status), in order: make the message's charge due when it is
        delivered, and give the status webhook's `pricing` object (None when the message has
        no stored charge). One read of the charges for them all."""
        repository = BillingRepository(session)
        charges = await repository.pricing_by_wamids(sorted({w for w, _ in changes}))
        priced: list[dict[str, Any] | None] = []
        due: dict[str, None] = {}  # charges falling due now, in order, once each
        for wamid, status in changes:
            row = charges.get(wamid)
            if row is None:
                priced.append(None)
                continue
            if status in DELIVERED and row.delivered_at is None:
                due[wamid] = None
            priced.append(
                pricing_object(
                    Charge(
                        billable=row.billable,
                        type=PricingType(row.pricing_type),
                        category=PricingCategory(row.pricing_category),
                        amount=from_micros(row.amount_micros),
                        currency=row.currency,
                        country=row.country,
                    )
                )
            )
        await repository.mark_delivered(list(due), at)
        return priced

    # -- reports -----------------------------------------------------------------------------

    async def daily_costs(
        self, business_id: int, start: datetime, end: datetime, *, detail: bool = False
    ) -> list[CostLine]:
        """Delivered messages per UTC day, pricing category and type (and with `detail`, per
        recipient country and sending number), over whole days covering [start, end). Free
        messages count in `volume` at cost 0."""
        first, last = day_range(start, end)
        Key = tuple[date, str, str, str, str, int]
        volume: dict[Key, int] = defaultdict(int)
        cost: dict[Key, int] = defaultdict(int)
        async with self._database.read_only() as uow:
            rows = await BillingRepository(uow.session).delivered_between(business_id, first, last)
            for row in rows:
                assert row.delivered_at is not None
                key = (
                    row.delivered_at.astimezone(UTC).date(),
                    row.pricing_category,
                    row.pricing_type,
                    row.currency,
                    (row.country or "") if detail else "",
                    row.phone_id if detail else 0,
                )
                volume[key] += 1
                cost[key] += row.amount_micros if row.billable else 0
        return [
            CostLine(
                day,
                category,
                kind,
                volume[key],
                from_micros(cost[key]),
                currency,
                country=(country or None) if detail else None,
                phone_id=phone_id if detail else None,
            )
            for key in sorted(volume)
            for day, category, kind, currency, country, phone_id in (key,)
        ]


def load_rate_card(
    currency: str,
    rates: Mapping[str, Mapping[str, str | float | int]] | None,
    path: Path | None,
) -> RateCard:
    """The operator's rate card: inline `rates`, else a JSON or TOML file, else the default
    card (then `currency` must be the default card's)."""
    if rates is None and path is not None:
        text = path.read_text()
        rates = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    if rates is None:
        if currency != DEFAULT_RATE_CARD.currency:
            raise ValueError(
                f"the default rate card is in {DEFAULT_RATE_CARD.currency}; configure"
                f" pricing.rates for {currency}"
            )
        return DEFAULT_RATE_CARD
    card = RateCard.from_config(rates, currency)
    for row in (card.default, *card.rates.values()):
        for price in row.values():
            if to_micros(price) != price * MICROS:
                raise ValueError(f"prices have at most 6 decimal places, not {price}")
    return card
