"""All SQL of the accounts domain."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.models import Account, AccountBlock, VerificationCode
from tidings.db.direct import direct
from tidings.db.sets import SetParameter, per_dialect

_accounts = Account.__table__
_blocks = AccountBlock.__table__
# Every receipt a device posts names the account it answers.
_ID_OF_PHONE = direct(select(_accounts.c.id).where(_accounts.c.phone == bindparam("phone")))

# Every send the core files (a Cloud API batch of the business worker's, a device's message)
# checks its recipients with these two, prebuilt, as rows rather than ORM objects.
_PHONES = SetParameter("phones")
_IDS_OF_PHONES = per_dialect(
    lambda dialect: select(_accounts.c.phone, _accounts.c.id).where(
        _PHONES.condition(dialect, _accounts.c.phone)
    ),
    direct_on_sqlite=True,
)
_ACCOUNT_IDS = SetParameter("account_ids")
_BLOCKERS = per_dialect(
    lambda dialect: select(_blocks.c.account_id).where(
        _blocks.c.blocked_phone == bindparam("phone"),
        _ACCOUNT_IDS.condition(dialect, _blocks.c.account_id),
    ),
    direct_on_sqlite=True,
)


class AccountRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_phone(self, phone: str, *, for_update: bool = False) -> Account | None:
        query = select(Account).where(Account.phone == phone)
        if for_update:
            query = query.with_for_update()
        result: Account | None = await self.session.scalar(query)
        return result

    async def id_of_phone(self, phone: str) -> int | None:
        result: int | None = (await self.session.execute(_ID_OF_PHONE, {"phone": phone})).scalar()
        return result

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    async def ids_of_phones(self, phones: Collection[str]) -> dict[str, int]:
        """The account ids of those of `phones` that are registered, by phone."""
        if not phones:
            return {}
        dialect = self._dialect
        rows = await self.session.execute(_IDS_OF_PHONES[dialect], _PHONES.bind(dialect, phones))
        return {phone: account_id for phone, account_id in rows}

    async def by_id(self, account_id: int, *, for_update: bool = False) -> Account | None:
        query = select(Account).where(Account.id == account_id)
        if for_update:
            query = query.with_for_update()
        result: Account | None = await self.session.scalar(query)
        return result

    async def add(self, account: Account) -> Account:
        self.session.add(account)
        await self.session.flush()
        return account

    async def add_code(self, code: VerificationCode) -> None:
        self.session.add(code)
        await self.session.flush()

    async def live_codes(self, phone: str, now: datetime) -> list[VerificationCode]:
        query = (
            select(VerificationCode)
            .where(
                VerificationCode.phone == phone,
                VerificationCode.used_at.is_(None),
                VerificationCode.expires_at > now,
            )
            .with_for_update()
        )
        return list(await self.session.scalars(query))

    async def expired_code_exists(self, phone: str, code_hash: str, now: datetime) -> bool:
        query = select(VerificationCode.id).where(
            VerificationCode.phone == phone,
            VerificationCode.code_hash == code_hash,
            VerificationCode.expires_at <= now,
        )
        return (await self.session.scalar(query.limit(1))) is not None

    async def retire_codes(self, phone: str, now: datetime) -> None:
        """Once a number registers, no older code for it may be used again."""
        await self.session.execute(
            update(VerificationCode)
            .where(VerificationCode.phone == phone, VerificationCode.used_at.is_(None))
            .values(used_at=now)
        )

    # -- blocks -------------------------------------------------------------------------------

    async def block(self, account_id: int, phone: str, now: datetime) -> None:
        exists = await self.session.scalar(
            select(AccountBlock.id).where(
                AccountBlock.account_id == account_id, AccountBlock.blocked_phone == phone
            )
        )
        if exists is None:
            self.session.add(
                AccountBlock(account_id=account_id, blocked_phone=phone, created_at=now)
            )
            await self.session.flush()

    async def unblock(self, account_id: int, phone: str) -> None:
        await self.session.execute(
            delete(AccountBlock).where(
                AccountBlock.account_id == account_id, AccountBlock.blocked_phone == phone
            )
        )

    async def blocked_phones(self, account_id: int) -> list[str]:
        rows = await self.session.scalars(
            select(AccountBlock.blocked_phone)
            .where(AccountBlock.account_id == account_id)
            .order_by(AccountBlock.blocked_phone)
        )
        return list(rows.all())

    async def blockers(self, account_ids: Collection[int], phone: str) -> set[int]:
        """Those of `account_ids` that blocked `phone`, in one statement."""
        if not account_ids:
            return set()
        dialect = self._dialect
        rows = await self.session.execute(
            _BLOCKERS[dialect], {"phone": phone, **_ACCOUNT_IDS.bind(dialect, account_ids)}
        )
        return {account_id for (account_id,) in rows}
