"""All SQL of the attachments domain."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.attachments.models import Attachment


class AttachmentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: Attachment) -> None:
        self.session.add(row)

    async def get(self, attachment_id: str) -> Attachment | None:
        row: Attachment | None = await self.session.get(Attachment, attachment_id)
        return row

    async def expired(self, now: datetime, limit: int) -> list[Attachment]:
        rows = await self.session.scalars(
            select(Attachment)
            .where(Attachment.expires_at <= now)
            .order_by(Attachment.expires_at)
            .limit(limit)
        )
        return list(rows)

    async def delete(self, ids: Sequence[str]) -> None:
        await self.session.execute(delete(Attachment).where(Attachment.id.in_(ids)))
