"""All SQL of business media (kept beside repository.py: a separate table and lifecycle)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.business.models import BusinessMedia, BusinessPhone


class MediaRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: BusinessMedia) -> None:
        self.session.add(row)

    async def with_phone(self, media_id: str) -> tuple[BusinessMedia, BusinessPhone] | None:
        row = (
            await self.session.execute(
                select(BusinessMedia, BusinessPhone)
                .join(BusinessPhone, BusinessPhone.id == BusinessMedia.phone_id)
                .where(BusinessMedia.media_id == media_id)
            )
        ).first()
        return (row[0], row[1]) if row is not None else None

    async def expired(self, now: datetime, limit: int) -> list[BusinessMedia]:
        rows = await self.session.scalars(
            select(BusinessMedia)
            .where(BusinessMedia.expires_at <= now)
            .order_by(BusinessMedia.expires_at)
            .limit(limit)
        )
        return list(rows)

    async def delete(self, media_ids: Sequence[str]) -> None:
        await self.session.execute(
            delete(BusinessMedia).where(BusinessMedia.media_id.in_(media_ids))
        )
