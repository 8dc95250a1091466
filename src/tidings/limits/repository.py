"""All SQL of the messaging limits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.db.direct import direct
from tidings.limits.models import BusinessTier, LimitReach, PhoneThroughput

# Read by every send (prebuilt: building an ORM query costs more than running it).
_LEVEL = direct(
    select(PhoneThroughput.__table__.c.level).where(
        PhoneThroughput.__table__.c.phone_id == bindparam("phone_pk")
    )
)


class LimitsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def tier_row(
        self, business_id: int, initial_tier: str, now: datetime, *, lock: bool = False
    ) -> BusinessTier:
        """The business's tier row (created at `initial_tier` on first use); `lock` holds its
        row lock to the end of the transaction."""
        insert = (
            pg_insert if self.session.get_bind().dialect.name == "postgresql" else sqlite_insert
        )
        await self.session.execute(
            insert(BusinessTier)
            .values(business_id=business_id, tier=initial_tier, updated_at=now)
            .on_conflict_do_nothing()
        )
        query = select(BusinessTier).where(BusinessTier.business_id == business_id)
        if lock:
            query = query.with_for_update()
        row: BusinessTier | None = await self.session.scalar(query)
        assert row is not None
        return row

    async def peek_tier(self, business_id: int) -> BusinessTier | None:
        result: BusinessTier | None = await self.session.get(BusinessTier, business_id)
        return result

    async def tier_rows(self) -> Sequence[BusinessTier]:
        return (await self.session.scalars(select(BusinessTier))).all()

    async def reach_summary(self, business_id: int, since: datetime) -> tuple[int, datetime | None]:
        """How many customers were reached after `since`, and the earliest of those reaches."""
        count, oldest = (
            await self.session.execute(
                select(func.count(), func.min(LimitReach.reached_at)).where(
                    LimitReach.business_id == business_id, LimitReach.reached_at > since
                )
            )
        ).one()
        return int(count), oldest

    async def customer_reached(self, business_id: int, customer: str, since: datetime) -> bool:
        found = await self.session.scalar(
            select(LimitReach.id)
            .where(
                LimitReach.business_id == business_id,
                LimitReach.customer == customer,
                LimitReach.reached_at > since,
            )
            .limit(1)
        )
        return found is not None

    async def reach_times(self, business_id: int, since: datetime) -> list[datetime]:
        rows = await self.session.scalars(
            select(LimitReach.reached_at)
            .where(LimitReach.business_id == business_id, LimitReach.reached_at > since)
            .order_by(LimitReach.reached_at)
        )
        return list(rows)

    def add_reach(self, business_id: int, customer: str, at: datetime) -> None:
        self.session.add(LimitReach(business_id=business_id, customer=customer, reached_at=at))

    async def purge_reaches(self, before: datetime) -> int:
        result = await self.session.execute(
            delete(LimitReach).where(LimitReach.reached_at <= before)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def throughput_level(self, phone_pk: int) -> str | None:
        level: str | None = await self.session.scalar(_LEVEL, {"phone_pk": phone_pk})
        return level

    async def set_throughput_level(self, phone_pk: int, level: str, now: datetime) -> None:
        row = await self.session.get(PhoneThroughput, phone_pk, with_for_update=True)
        if row is None:
            self.session.add(PhoneThroughput(phone_id=phone_pk, level=level, updated_at=now))
        else:
            row.level = level
            row.updated_at = now
