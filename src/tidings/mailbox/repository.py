"""All SQL of the mailbox domain."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Integer, String, Table, and_, bindparam, delete, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.db.direct import direct
from tidings.db.sets import SetParameter, per_dialect
from tidings.mailbox.models import EnvelopeRow, Mailbox

_MAILBOXES = cast(Table, Mailbox.__table__)
_ENVELOPES = cast(Table, EnvelopeRow.__table__)


def _allocate(dialect_insert: Any) -> Any:
    """Add each row's `last_seq` to its mailbox's counter (creating it at that value) and
    return the counters, one statement for every mailbox of a batch (executemany: SQLAlchemy
    sends it as one multi-row INSERT)."""
    statement = dialect_insert(_MAILBOXES)
    return statement.on_conflict_do_update(
        index_elements=[_MAILBOXES.c.device_pk],
        set_={"last_seq": _MAILBOXES.c.last_seq + statement.excluded.last_seq},
    ).returning(_MAILBOXES.c.device_pk, _MAILBOXES.c.last_seq)


_ALLOCATE_PG = _allocate(pg_insert)
_ALLOCATE_SQLITE = _allocate(sqlite_insert)


def _filed(pairs: Any, device_pk: Any, message_id: Any) -> Any:
    """Which (mailbox, message id) pairs of `pairs` a sender already filed as a kind: a lookup
    of the unique index per pair, in one statement whatever the number of pairs."""
    return (
        select(_ENVELOPES.c.device_pk, _ENVELOPES.c.message_id)
        .select_from(pairs)
        .join(
            _ENVELOPES,
            and_(
                _ENVELOPES.c.device_pk == device_pk,
                _ENVELOPES.c.sender_phone == bindparam("sender"),
                _ENVELOPES.c.kind == bindparam("kind"),
                _ENVELOPES.c.message_id == message_id,
            ),
        )
    )


# PostgreSQL: two arrays unnested side by side. SQLite: one JSON array of [device, id] pairs.
_PG_PAIRS = (
    func.unnest(
        bindparam("device_pks", type_=ARRAY(Integer)), bindparam("message_ids", type_=ARRAY(String))
    )
    .table_valued("device_pk", "message_id")
    .render_derived(name="pairs")
)
_FILED_PG = _filed(_PG_PAIRS, _PG_PAIRS.c.device_pk, _PG_PAIRS.c.message_id)
_SQLITE_PAIRS = (
    func.json_each(bindparam("pairs", type_=String)).table_valued("value").alias("pairs")
)
_FILED_SQLITE = direct(
    _filed(
        _SQLITE_PAIRS,
        func.json_extract(_SQLITE_PAIRS.c.value, "$[0]"),
        func.json_extract(_SQLITE_PAIRS.c.value, "$[1]"),
    )
)

_INSERT_ENVELOPES = direct(insert(_ENVELOPES))
# A device's mailbox page, as plain rows: every sync and every push reads one.
_PAGE = direct(
    select(
        _ENVELOPES.c.seq,
        _ENVELOPES.c.kind,
        _ENVELOPES.c.message_id,
        _ENVELOPES.c.sender_phone,
        _ENVELOPES.c.sender_device,
        _ENVELOPES.c.olm_type,
        _ENVELOPES.c.body,
        _ENVELOPES.c.server_ts,
    )
    .where(_ENVELOPES.c.device_pk == bindparam("device_pk"), _ENVELOPES.c.seq > bindparam("after"))
    .order_by(_ENVELOPES.c.seq)
    .limit(bindparam("limit"))
)


# Every ack a device sends (one per push it is given) deletes what it acknowledged.
_SEQS = SetParameter("seqs")
_ACKED = per_dialect(
    lambda dialect: delete(_ENVELOPES).where(
        _ENVELOPES.c.device_pk == bindparam("device_pk"),
        _SEQS.condition(dialect, _ENVELOPES.c.seq),
    ),
    direct_on_sqlite=True,
)


class MailboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _postgresql(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    async def allocate(self, counts: Mapping[int, int]) -> dict[int, int]:
        """Reserve `counts[device_pk]` positions in each mailbox; return each mailbox's last
        position (the reserved ones are the `count` up to it). The upsert takes the counter
        rows' locks, held until commit, which is what keeps positions in commit order; it
        takes them in ascending device order, so two transactions cannot deadlock on them."""
        if not counts:
            return {}
        statement = _ALLOCATE_PG if self._postgresql else _ALLOCATE_SQLITE
        rows = await self.session.execute(
            statement,
            [{"device_pk": pk, "last_seq": counts[pk]} for pk in sorted(counts)],
        )
        return {int(pk): int(last) for pk, last in rows}

    async def filed(
        self, sender: str, kind: str, pairs: Collection[tuple[int, str]]
    ) -> set[tuple[int, str]]:
        """The (device_pk, message_id) pairs of `pairs` already in a mailbox from `sender`."""
        if not pairs:
            return set()
        pairs = list(pairs)
        if self._postgresql:
            params: dict[str, object] = {
                "device_pks": [pk for pk, _ in pairs],
                "message_ids": [message_id for _, message_id in pairs],
            }
            statement = _FILED_PG
        else:
            params = {"pairs": json.dumps(pairs)}
            statement = _FILED_SQLITE
        rows = await self.session.execute(statement, {**params, "sender": sender, "kind": kind})
        return {(int(pk), str(message_id)) for pk, message_id in rows}

    async def insert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Envelope rows (every column), inserted with one Core statement run once per row."""
        if rows:
            await self.session.execute(_INSERT_ENVELOPES, rows)

    async def page(self, device_pk: int, after: int, limit: int) -> list[Any]:
        """The mailbox's first `limit` envelopes after position `after`, in order: rows of
        (seq, kind, message_id, sender_phone, sender_device, olm_type, body, server_ts)."""
        rows = await self.session.execute(
            _PAGE, {"device_pk": device_pk, "after": after, "limit": limit}
        )
        return list(rows)

    async def delete(self, device_pk: int, seqs: Sequence[int]) -> int:
        dialect = self.session.get_bind().dialect.name
        result = await self.session.execute(
            _ACKED[dialect], {"device_pk": device_pk, **_SEQS.bind(dialect, seqs)}
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
