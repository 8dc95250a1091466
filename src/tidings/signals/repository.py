"""All SQL of the signals domain."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, bindparam, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.db.direct import direct
from tidings.db.sets import SetParameter, per_dialect
from tidings.signals.models import (
    ConsentRecord,
    CustomerBlock,
    CustomerSignal,
    CustomerWindow,
    PhoneQuality,
    PolicySend,
)

# What every send reads (the policy gate's facts), as prebuilt Core statements: building and
# compiling an ORM query costs several times more than running it on SQLite.
_windows = CustomerWindow.__table__
_WINDOW_TIMES = direct(
    select(
        _windows.c.last_inbound_at, _windows.c.entry_started_at, _windows.c.entry_replied_at
    ).where(
        _windows.c.phone_id == bindparam("phone_pk"), _windows.c.customer == bindparam("customer")
    )
)
_blocks = CustomerBlock.__table__
_BLOCKED = direct(
    select(_blocks.c.blocked).where(
        _blocks.c.business_id == bindparam("business_id"),
        _blocks.c.customer == bindparam("customer"),
    )
)

_SENDS = cast(Table, PolicySend.__table__)
_INSERT_SEND = direct(insert(_SENDS))
_INSERT_SIGNAL = direct(insert(cast(Table, CustomerSignal.__table__)))
_WAMIDS = SetParameter("wamids")
# A run of receipts asks which template each message sent.
_TEMPLATES = per_dialect(
    lambda dialect: select(_SENDS.c.wamid, _SENDS.c.template_id).where(
        _WAMIDS.condition(dialect, _SENDS.c.wamid)
    ),
    direct_on_sqlite=True,
)


class SignalsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, *rows: object) -> None:
        self.session.add_all(rows)

    async def insert_send(
        self,
        *,
        phone_pk: int,
        customer: str,
        wamid: str,
        category: str,
        template_id: str | None,
        at: datetime,
    ) -> None:
        """Log an allowed send (a Core insert, at once: every send writes one)."""
        await self.session.execute(
            _INSERT_SEND,
            {
                "phone_id": phone_pk,
                "customer": customer,
                "wamid": wamid,
                "category": category,
                "template_id": template_id,
                "at": at,
            },
        )

    # -- windows ----------------------------------------------------------------------------

    async def window(self, phone_pk: int, customer: str) -> CustomerWindow | None:
        found: CustomerWindow | None = await self.session.scalar(
            select(CustomerWindow).where(
                CustomerWindow.phone_id == phone_pk, CustomerWindow.customer == customer
            )
        )
        return found

    async def window_times(
        self, phone_pk: int, customer: str
    ) -> tuple[datetime | None, datetime | None, datetime | None] | None:
        """(last_inbound_at, entry_started_at, entry_replied_at) of the pair's window."""
        result = await self.session.execute(
            _WINDOW_TIMES, {"phone_pk": phone_pk, "customer": customer}
        )
        row = result.first()
        return None if row is None else (row[0], row[1], row[2])

    async def window_for_update(self, phone_pk: int, customer: str) -> CustomerWindow:
        """The window row, created empty if the pair has none (callers hold the phone's
        journal lock, so two appliers never race to create it)."""
        found = await self.window(phone_pk, customer)
        if found is None:
            found = CustomerWindow(phone_id=phone_pk, customer=customer)
            self.session.add(found)
            await self.session.flush()
        return found

    # -- consent ----------------------------------------------------------------------------

    async def consent_ledger(self, business_id: int, customer: str) -> Sequence[ConsentRecord]:
        rows = await self.session.scalars(
            select(ConsentRecord)
            .where(ConsentRecord.business_id == business_id, ConsentRecord.customer == customer)
            .order_by(ConsentRecord.at, ConsentRecord.id)
        )
        return rows.all()

    async def consent_export(
        self, business_id: int, customer: str | None, after_id: int, limit: int
    ) -> Sequence[ConsentRecord]:
        query = select(ConsentRecord).where(
            ConsentRecord.business_id == business_id, ConsentRecord.id > after_id
        )
        if customer is not None:
            query = query.where(ConsentRecord.customer == customer)
        rows = await self.session.scalars(query.order_by(ConsentRecord.id).limit(limit))
        return rows.all()

    # -- blocks -----------------------------------------------------------------------------

    async def block(self, business_id: int, customer: str) -> CustomerBlock | None:
        found: CustomerBlock | None = await self.session.scalar(
            select(CustomerBlock).where(
                CustomerBlock.business_id == business_id, CustomerBlock.customer == customer
            )
        )
        return found

    async def blocked(self, business_id: int, customer: str) -> bool:
        """Whether `customer` blocks the business now."""
        found = await self.session.scalar(
            _BLOCKED, {"business_id": business_id, "customer": customer}
        )
        return bool(found)

    # -- sends and signals ------------------------------------------------------------------

    async def marketing_received(self, customer: str, since: datetime) -> list[datetime]:
        """When `customer` was sent marketing templates by any business, after `since`."""
        rows = await self.session.scalars(
            select(PolicySend.at).where(
                PolicySend.customer == customer,
                PolicySend.category == "MARKETING",
                PolicySend.at > since,
            )
        )
        return list(rows.all())

    async def templates_of(self, wamids: Sequence[str]) -> dict[str, str | None]:
        """The template each of these messages sent (None: free-form), by wamid; one read of
        two columns for a run of receipts."""
        if not wamids:
            return {}
        dialect = self.session.get_bind().dialect.name
        rows = await self.session.execute(_TEMPLATES[dialect], _WAMIDS.bind(dialect, wamids))
        return {wamid: template_id for wamid, template_id in rows}

    async def insert_signals(self, rows: Sequence[dict[str, Any]]) -> None:
        """Signal rows (all their columns but the id), inserted at once with one Core
        statement: a run of receipts writes one per status."""
        if rows:
            await self.session.execute(_INSERT_SIGNAL, list(rows))

    async def last_template_send(
        self, phone_pk: int, customer: str, since: datetime
    ) -> PolicySend | None:
        """The latest template this number sent the customer after `since` (a block or an
        opt-out is charged to it)."""
        found: PolicySend | None = await self.session.scalar(
            select(PolicySend)
            .where(
                PolicySend.phone_id == phone_pk,
                PolicySend.customer == customer,
                PolicySend.template_id.is_not(None),
                PolicySend.at > since,
            )
            .order_by(PolicySend.at.desc(), PolicySend.id.desc())
            .limit(1)
        )
        return found

    async def signal_totals(
        self, since: datetime, *, phone_pk: int | None = None, template_id: str | None = None
    ) -> list[tuple[str, datetime, int]]:
        """Signals after `since` of a number or a template, summed per kind and hour:
        `(kind, latest time in the hour, count)`. A busy number has a row per delivery and
        read; ratings read at most 7 x 24 hours x kinds rows this way (the weight of a
        signal changes by under 1.5 % within an hour)."""
        if self.session.get_bind().dialect.name == "postgresql":
            hour: ColumnElement[Any] = func.date_trunc("hour", CustomerSignal.at)
        else:  # SQLite stores "YYYY-MM-DD HH:MM:SS.ffffff"
            hour = func.substr(CustomerSignal.at, 1, 13)
        query = select(
            CustomerSignal.kind, func.max(CustomerSignal.at), func.sum(CustomerSignal.count)
        ).where(CustomerSignal.at > since)
        if phone_pk is not None:
            query = query.where(CustomerSignal.phone_id == phone_pk)
        if template_id is not None:
            query = query.where(CustomerSignal.template_id == template_id)
        rows = await self.session.execute(query.group_by(CustomerSignal.kind, hour))
        return [(kind, at, int(count)) for kind, at, count in rows.all()]

    # -- phone quality ----------------------------------------------------------------------

    async def phone_quality(self, phone_pk: int) -> PhoneQuality | None:
        found: PhoneQuality | None = await self.session.get(PhoneQuality, phone_pk)
        return found
