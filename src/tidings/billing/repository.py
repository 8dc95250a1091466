"""All SQL of billing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.billing.models import MessageCharge
from tidings.db.sets import one_of

_INSERT_CHARGE = insert(cast(Table, MessageCharge.__table__))


class BillingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, charge: MessageCharge) -> None:
        self.session.add(charge)

    async def insert(self, **values: object) -> None:
        """A charge row, inserted at once with a Core statement (every send writes one)."""
        await self.session.execute(_INSERT_CHARGE, values)

    async def by_wamids(self, wamids: Sequence[str]) -> dict[str, MessageCharge]:
        if not wamids:
            return {}
        rows = await self.session.scalars(
            select(MessageCharge).where(one_of(self.session, MessageCharge.wamid, wamids))
        )
        return {row.wamid: row for row in rows}

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
