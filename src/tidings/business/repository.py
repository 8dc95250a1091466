"""All SQL of the business domain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.business.models import (
    AccessToken,
    Business,
    BusinessApp,
    BusinessMessage,
    BusinessPhone,
)
from tidings.db.direct import direct
from tidings.db.sets import SetParameter, per_dialect
from tidings.db.uow import Database

_tokens = AccessToken.__table__
_businesses = Business.__table__
_phones = BusinessPhone.__table__
_apps = BusinessApp.__table__
# Every Business API request on a phone number asks this (prebuilt: building and compiling
# the ORM queries cost more than running one Core statement).
_TOKEN_AND_PHONE = direct(
    select(
        _tokens.c.id,
        _tokens.c.business_id,
        _tokens.c.scopes,
        _tokens.c.revoked_at,
        _tokens.c.expires_at,
        _businesses.c.waba_id,
        _phones.c.id.label("phone_pk"),
        _phones.c.business_id.label("phone_business_id"),
        _phones.c.phone,
        _phones.c.verified_name,
    )
    .select_from(
        _tokens.join(_businesses, _businesses.c.id == _tokens.c.business_id).outerjoin(
            _phones, _phones.c.phone_number_id == bindparam("phone_number_id")
        )
    )
    .where(_tokens.c.token_hash == bindparam("token_hash"))
)

# The webhook dispatcher signs every batch it posts with this (prebuilt, as above).
_APP_SECRET_OF_WABA = direct(
    select(_apps.c.app_secret_sealed)
    .select_from(_businesses.join(_apps, _apps.c.business_id == _businesses.c.id))
    .where(_businesses.c.waba_id == bindparam("waba_id"))
)

_messages = BusinessMessage.__table__
# The business worker's queue: the number's outbound messages accepted and not yet sent. The
# backlog count (`count_pending_outbound`) reads the same rows.
_PENDING_CONDITIONS = (
    _messages.c.phone_id == bindparam("phone_pk"),
    _messages.c.direction == "out",
    _messages.c.status == "accepted",
)
_PENDING = direct(
    select(
        _messages.c.id,
        _messages.c.wamid,
        _messages.c.e2e_id,
        _messages.c.customer,
        _messages.c.content_sealed,
    )
    .where(*_PENDING_CONDITIONS)
    .order_by(_messages.c.id)
    .limit(bindparam("limit"))
)
_COUNT_PENDING = direct(select(func.count()).select_from(_messages).where(*_PENDING_CONDITIONS))
_JOURNAL_CURSOR = direct(
    select(_phones.c.journal_cursor).where(_phones.c.id == bindparam("phone_pk"))
)

_INSERT_MESSAGE = direct(insert(cast(Table, BusinessMessage.__table__)))
# A journal pass takes the number by moving its cursor, compare-and-set.
_MOVE_JOURNAL_CURSOR = direct(
    update(cast(Table, _phones))
    .where(_phones.c.id == bindparam("phone_pk"), _phones.c.journal_cursor == bindparam("cursor"))
    .values(journal_cursor=bindparam("moved_to"))
)
# A run of status changes, written by id in one executemany (not as dirty ORM objects: the
# session's flush of a run cost more than everything else in recording it).
_SET_STATUS = direct(
    update(cast(Table, _messages))
    .where(_messages.c.id == bindparam("message_id"))
    .values(
        status=bindparam("new_status"),
        error_code=bindparam("new_error"),
        updated_at=bindparam("new_updated_at"),
    )
)
# The messages a run of statuses or receipts names, prebuilt per dialect: building the query
# with an IN list and generating its cache key cost more than loading the rows.
_IDS = SetParameter("ids")
_E2E_IDS = SetParameter("e2e_ids")
_MESSAGES_BY_IDS = per_dialect(
    lambda dialect: (
        select(BusinessMessage)
        .where(_IDS.condition(dialect, _messages.c.id))
        .order_by(BusinessMessage.id)
        .with_for_update()
    ),
    direct_on_sqlite=False,
)
_MESSAGES_BY_E2E = per_dialect(
    lambda dialect: select(BusinessMessage).where(
        BusinessMessage.phone_id == bindparam("phone_pk"),
        BusinessMessage.direction == bindparam("direction"),
        _E2E_IDS.condition(dialect, _messages.c.e2e_id),
    ),
    direct_on_sqlite=False,
)


class BusinessRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, *rows: object) -> None:
        self.session.add_all(rows)

    async def flush(self) -> None:
        await self.session.flush()

    async def token(self, token_hash: str) -> AccessToken | None:
        result: AccessToken | None = await self.session.scalar(
            select(AccessToken).where(AccessToken.token_hash == token_hash)
        )
        return result

    @staticmethod
    async def token_and_phone(database: Database, token_hash: str, phone_number_id: str) -> Any:
        """The token (with its business's WABA id) and the phone number `phone_number_id`
        (None columns when no such number), in one statement; None when no such token."""
        return await database.first(
            _TOKEN_AND_PHONE, {"token_hash": token_hash, "phone_number_id": phone_number_id}
        )

    @staticmethod
    async def sealed_app_secret(database: Database, waba_id: str) -> bytes | None:
        """The sealed app secret of the business with `waba_id` (None: no such business)."""
        row = await database.first(_APP_SECRET_OF_WABA, {"waba_id": waba_id})
        return None if row is None else cast(bytes, row.app_secret_sealed)

    async def business(self, business_id: int) -> Business | None:
        result: Business | None = await self.session.get(Business, business_id)
        return result

    async def business_by_waba(self, waba_id: str) -> Business | None:
        result: Business | None = await self.session.scalar(
            select(Business).where(Business.waba_id == waba_id)
        )
        return result

    async def phone(self, phone_number_id: str) -> BusinessPhone | None:
        result: BusinessPhone | None = await self.session.scalar(
            select(BusinessPhone).where(BusinessPhone.phone_number_id == phone_number_id)
        )
        return result

    async def phones(self) -> list[BusinessPhone]:
        return list(await self.session.scalars(select(BusinessPhone).order_by(BusinessPhone.id)))

    async def phones_of(self, business_id: int) -> list[BusinessPhone]:
        return list(
            await self.session.scalars(
                select(BusinessPhone).where(BusinessPhone.business_id == business_id)
            )
        )

    # -- messages ---------------------------------------------------------------------------

    async def insert_message(self, row: dict[str, Any]) -> None:
        """A message row (all its columns but the id), inserted at once with a Core statement."""
        await self.session.execute(_INSERT_MESSAGE, row)

    async def message_by_wamid(self, wamid: str) -> BusinessMessage | None:
        result: BusinessMessage | None = await self.session.scalar(
            select(BusinessMessage).where(BusinessMessage.wamid == wamid)
        )
        return result

    async def messages_by_e2e(
        self, phone_pk: int, e2e_ids: Sequence[str], direction: str
    ) -> list[BusinessMessage]:
        dialect = self.session.get_bind().dialect.name
        params = {
            "phone_pk": phone_pk,
            "direction": direction,
            **_E2E_IDS.bind(dialect, e2e_ids),
        }
        return list(await self.session.scalars(_MESSAGES_BY_E2E[dialect], params))

    async def messages_by_ids(self, ids: Sequence[int]) -> dict[int, BusinessMessage]:
        """The messages, locked for update (in id order, so concurrent lockers cannot
        deadlock)."""
        dialect = self.session.get_bind().dialect.name
        rows = await self.session.scalars(_MESSAGES_BY_IDS[dialect], _IDS.bind(dialect, ids))
        return {row.id: row for row in rows}

    async def set_statuses(self, changes: Sequence[BusinessMessage]) -> None:
        """Write each message's status, error code and update time as it now holds them (the
        caller set them as committed values, so the session has nothing to flush)."""
        if changes:
            await self.session.execute(
                _SET_STATUS,
                [
                    {
                        "message_id": m.id,
                        "new_status": m.status,
                        "new_error": m.error_code,
                        "new_updated_at": m.updated_at,
                    }
                    for m in changes
                ],
            )

    async def move_journal_cursor(self, phone_pk: int, cursor: int, moved_to: int) -> bool:
        """Move the number's journal cursor from `cursor` to `moved_to`; False when it was
        not at `cursor` (another pass applied those entries). The row stays locked until
        commit, so no other pass applies the same entries meanwhile."""
        result = await self.session.execute(
            _MOVE_JOURNAL_CURSOR, {"phone_pk": phone_pk, "cursor": cursor, "moved_to": moved_to}
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def count_pending_outbound(self, phone_pk: int) -> int:
        count: int | None = await self.session.scalar(_COUNT_PENDING, {"phone_pk": phone_pk})
        return count or 0

    async def pending_outbound(self, phone_pk: int, limit: int) -> list[Any]:
        """(id, wamid, e2e_id, customer, content_sealed) of the number's first `limit`
        messages waiting to be sent, in order."""
        rows = await self.session.execute(_PENDING, {"phone_pk": phone_pk, "limit": limit})
        return list(rows)

    @staticmethod
    async def journal_cursor(database: Database, phone_pk: int) -> int | None:
        """Where the number's journal was applied up to (None: no such number)."""
        row = await database.first(_JOURNAL_CURSOR, {"phone_pk": phone_pk})
        return None if row is None else int(row.journal_cursor)
