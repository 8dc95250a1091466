"""All SQL of the mailbox domain."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.mailbox.models import EnvelopeRow, Mailbox


class MailboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def allocate(self, device_pk: int, count: int = 1) -> int:
        """Reserve `count` positions and return the last. The upsert takes the counter row's
        lock, held until commit, which is what keeps positions in commit order."""
        dialect = self.session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        statement = (
            insert(Mailbox)
            .values(device_pk=device_pk, last_seq=count)
            .on_conflict_do_update(
                index_elements=[Mailbox.device_pk], set_={"last_seq": Mailbox.last_seq + count}
            )
            .returning(Mailbox.last_seq)
        )
        return int((await self.session.execute(statement)).scalar_one())

    async def existing_message_ids(
        self, device_pks: Sequence[int], sender: str, kind: str, message_id: str
    ) -> set[int]:
        rows = await self.session.scalars(
            select(EnvelopeRow.device_pk).where(
                EnvelopeRow.device_pk.in_(device_pks),
                EnvelopeRow.sender_phone == sender,
                EnvelopeRow.kind == kind,
                EnvelopeRow.message_id == message_id,
            )
        )
        return set(rows)

    def add(self, row: EnvelopeRow) -> None:
        self.session.add(row)

    async def page(self, device_pk: int, after: int, limit: int) -> list[EnvelopeRow]:
        rows = await self.session.scalars(
            select(EnvelopeRow)
            .where(EnvelopeRow.device_pk == device_pk, EnvelopeRow.seq > after)
            .order_by(EnvelopeRow.seq)
            .limit(limit)
        )
        return list(rows)

    async def delete(self, device_pk: int, seqs: Sequence[int]) -> int:
        result = await self.session.execute(
            delete(EnvelopeRow).where(EnvelopeRow.device_pk == device_pk, EnvelopeRow.seq.in_(seqs))
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def purge(self, device_pks: Sequence[int]) -> None:
        await self.session.execute(delete(EnvelopeRow).where(EnvelopeRow.device_pk.in_(device_pks)))
        await self.session.execute(delete(Mailbox).where(Mailbox.device_pk.in_(device_pks)))

    async def count(self, device_pk: int) -> int:
        value = await self.session.scalar(
            select(func.count()).select_from(EnvelopeRow).where(EnvelopeRow.device_pk == device_pk)
        )
        return int(value or 0)
