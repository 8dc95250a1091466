"""All SQL of billing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.billing.models import MessageCharge
from tidings.db.direct import direct
from tidings.db.sets import SetParameter, per_dialect

_CHARGES = cast(Table, MessageCharge.__table__)
_INSERT_CHARGE = direct(insert(_CHARGES))
# What a status webhook's pricing object needs, read as plain rows: a run of statuses reads a
# hundred charges at a time, and ORM objects (identity map, change tracking, a flush of each
# changed one) cost several times the query.
_PRICING_COLUMNS = (
    _CHARGES.c.wamid,
    _CHARGES.c.billable,
    _CHARGES.c.pricing_type,
    _CHARGES.c.pricing_category,
    _CHARGES.c.amount_micros,
    _CHARGES.c.currency,
    _CHARGES.c.country,
    _CHARGES.c.delivered_at,
)
_WAMIDS = SetParameter("wamids")
_PRICING = per_dialect(
    lambda dialect: select(*_PRICING_COLUMNS).where(_WAMIDS.condition(dialect, _CHARGES.c.wamid)),
    direct_on_sqlite=True,
)
_MARK_DELIVERED = direct(
    update(_CHARGES)
    .where(_CHARGES.c.wamid == bindparam("charged_wamid"), _CHARGES.c.delivered_at.is_(None))
    .values(delivered_at=bindparam("delivered"))
)


class BillingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, charge: MessageCharge) -> None:
        self.session.add(charge)

    async def insert(self, **values: object) -> None:
        """A charge row, inserted at once with a Core statement (every send writes one)."""
        await self.session.execute(_INSERT_CHARGE, values)

    async def pricing_by_wamids(self, wamids: Sequence[str]) -> dict[str, Any]:
        """The charges of these messages (the `_PRICING_COLUMNS`), by wamid."""
        if not wamids:
            return {}
        dialect = self.session.get_bind().dialect.name
        rows = await self.session.execute(_PRICING[dialect], _WAMIDS.bind(dialect, wamids))
        return {row.wamid: row for row in rows}

    async def mark_delivered(self, wamids: Sequence[str], at: datetime) -> None:
        """Make these messages' charges due at `at`, unless already due: one statement."""
        if wamids:
            await self.session.execute(
                _MARK_DELIVERED, [{"charged_wamid": w, "delivered": at} for w in wamids]
            )

    async def delivered_between(
        self, business_id: int, start: datetime, end: datetime
    ) -> Sequence[MessageCharge]:
        """Charges of the business's messages delivered in [start, end)."""
        rows = await self.session.scalars(
            select(MessageCharge)
            .where(
                MessageCharge.business_id == business_id,
                MessageCharge.delivered_at >= start,
                MessageCharge.delivered_at < end,
            )
            .order_by(MessageCharge.delivered_at)
        )
        return rows.all()
