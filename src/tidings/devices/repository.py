"""All SQL of the devices domain."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from tidings.accounts.models import Account
from tidings.db.direct import direct
from tidings.db.sets import SetParameter, per_dialect
from tidings.db.uow import Database
from tidings.devices.models import Device, FallbackKeyRow, Link, OneTimeKeyRow

_devices = Device.__table__
_accounts = Account.__table__
# Every request a device makes is authenticated by this (one Core statement: loading the two
# ORM objects cost several times more than reading these columns).
_CREDENTIALS = direct(
    select(
        _devices.c.id,
        _devices.c.device_id,
        _devices.c.account_id,
        _devices.c.primary,
        _devices.c.status,
        _accounts.c.phone,
    )
    .join_from(_devices, _accounts, _accounts.c.id == _devices.c.account_id)
    .where(_devices.c.token_hash == bindparam("token_hash"))
)


# Every mailbox page tells the device how many one-time keys it has left.
_COUNT_ONE_TIME_KEYS = direct(
    select(func.count())
    .select_from(OneTimeKeyRow.__table__)
    .where(OneTimeKeyRow.__table__.c.device_pk == bindparam("device_pk"))
)


_fallbacks = FallbackKeyRow.__table__
_device_pk: BindParameter[int] = bindparam("device_pk")
# Every sync's first mailbox page carries the device's key status (the business worker's API
# device starts one per drain): one prebuilt statement for the three figures.
_KEY_STATUS = direct(
    select(
        _COUNT_ONE_TIME_KEYS.scalar_subquery().label("one_time_keys"),
        select(func.count())
        .where(_fallbacks.c.device_pk == _device_pk)
        .scalar_subquery()
        .label("fallbacks"),
        select(func.count())
        .where(_fallbacks.c.device_pk == _device_pk, _fallbacks.c.used_at.is_not(None))
        .scalar_subquery()
        .label("fallbacks_used"),
    )
)


# Every send the core files checks the device sets of its recipients and of its sender.
_ACCOUNT_IDS = SetParameter("account_ids")
_DEVICES_OF_ACCOUNTS = per_dialect(
    lambda dialect: (
        select(_devices.c.id, _devices.c.account_id, _devices.c.device_id, _devices.c.status)
        .where(
            _ACCOUNT_IDS.condition(dialect, _devices.c.account_id),
            _devices.c.status.in_(("active", "pending", "removed")),
        )
        .order_by(_devices.c.account_id, _devices.c.device_id)
    ),
    direct_on_sqlite=True,
)


class DeviceSummary(NamedTuple):
    """What a send's checks read of a device."""

    id: int
    account_id: int
    device_id: int
    status: str


# Every receipt is filed for the active devices of the sender it answers.
_ACTIVE_PKS = direct(
    select(_devices.c.id)
    .where(_devices.c.account_id == bindparam("account_id"), _devices.c.status == "active")
    .order_by(_devices.c.device_id)
)


class DeviceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @staticmethod
    async def credentials(database: Database, token_hash: str) -> Any:
        """(id, device_id, account_id, primary, status, phone) of the device holding the token
        whose hash is `token_hash`, or None."""
        return await database.first(_CREDENTIALS, {"token_hash": token_hash})

    async def by_pk(self, device_pk: int) -> Device | None:
        result: Device | None = await self.session.get(Device, device_pk)
        return result

    async def of_account(
        self, account_id: int, statuses: Sequence[str] = ("active",)
    ) -> list[Device]:
        query = (
            select(Device)
            .where(Device.account_id == account_id, Device.status.in_(statuses))
            .order_by(Device.device_id)
        )
        return list(await self.session.scalars(query))

    async def active_pks(self, account_id: int) -> list[int]:
        rows = await self.session.execute(_ACTIVE_PKS, {"account_id": account_id})
        return [pk for (pk,) in rows]

    async def summaries_of_accounts(self, account_ids: Collection[int]) -> list[DeviceSummary]:
        """The devices (active, pending and removed) of several accounts in one statement, by
        account, then device id."""
        if not account_ids:
            return []
        dialect = self.session.get_bind().dialect.name
        rows = await self.session.execute(
            _DEVICES_OF_ACCOUNTS[dialect], _ACCOUNT_IDS.bind(dialect, account_ids)
        )
        return [DeviceSummary._make(row) for row in rows]

    async def touch(self, device_pk: int, now: datetime, stale_before: datetime) -> None:
        await self.session.execute(
            update(Device)
            .where(
                Device.id == device_pk,
                or_(Device.last_seen_at.is_(None), Device.last_seen_at < stale_before),
            )
            .values(last_seen_at=now)
        )

    async def add(self, device: Device) -> Device:
        self.session.add(device)
        await self.session.flush()
        return device

    async def retire_all(self, account_id: int, now: datetime) -> list[int]:
        devices = await self.of_account(account_id, ("active", "pending"))
        for device in devices:
            device.status = "removed"
            device.removed_at = now
        await self.delete_keys([d.id for d in devices])
        return [d.id for d in devices]

    async def delete_keys(self, device_pks: Sequence[int]) -> None:
        if not device_pks:
            return
        await self.session.execute(
            delete(OneTimeKeyRow).where(OneTimeKeyRow.device_pk.in_(device_pks))
        )
        await self.session.execute(
            delete(FallbackKeyRow).where(FallbackKeyRow.device_pk.in_(device_pks))
        )

    # -- keys -------------------------------------------------------------------------------

    async def one_time_keys_by_id(
        self, device_pk: int, key_ids: Sequence[str]
    ) -> dict[str, OneTimeKeyRow]:
        if not key_ids:
            return {}
        rows = await self.session.scalars(
            select(OneTimeKeyRow).where(
                OneTimeKeyRow.device_pk == device_pk, OneTimeKeyRow.key_id.in_(key_ids)
            )
        )
        return {row.key_id: row for row in rows}

    async def add_one_time_keys(self, rows: Sequence[OneTimeKeyRow]) -> None:
        self.session.add_all(rows)
        await self.session.flush()

    async def count_one_time_keys(self, device_pk: int) -> int:
        count = await self.session.scalar(_COUNT_ONE_TIME_KEYS, {"device_pk": device_pk})
        return int(count or 0)

    async def key_counts(self, device_pk: int) -> tuple[int, bool, bool]:
        """(one-time keys left, has a fallback key, its fallback key has been used)."""
        row = (await self.session.execute(_KEY_STATUS, {"device_pk": device_pk})).one()
        return int(row.one_time_keys), row.fallbacks > 0, row.fallbacks_used > 0

    async def take_one_time_key(self, device_pk: int) -> OneTimeKeyRow | None:
        """Remove and return one key. SKIP LOCKED lets concurrent claimers take different keys
        on PostgreSQL; SQLite's single writer serialises them anyway."""
        row: OneTimeKeyRow | None = await self.session.scalar(
            select(OneTimeKeyRow)
            .where(OneTimeKeyRow.device_pk == device_pk)
            .order_by(OneTimeKeyRow.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if row is not None:
            await self.session.execute(delete(OneTimeKeyRow).where(OneTimeKeyRow.id == row.id))
        return row

    async def fallback_key(
        self, device_pk: int, *, for_update: bool = False
    ) -> FallbackKeyRow | None:
        query = select(FallbackKeyRow).where(FallbackKeyRow.device_pk == device_pk)
        if for_update:
            query = query.with_for_update()
        result: FallbackKeyRow | None = await self.session.scalar(query)
        return result

    async def put_fallback_key(self, row: FallbackKeyRow) -> None:
        existing = await self.fallback_key(row.device_pk, for_update=True)
        if existing is None:
            self.session.add(row)
        elif existing.key_id != row.key_id or existing.public_key != row.public_key:
            existing.key_id = row.key_id
            existing.public_key = row.public_key
            existing.signature = row.signature
            existing.used_at = None
        await self.session.flush()

    # -- links ------------------------------------------------------------------------------

    async def add_link(self, link: Link) -> None:
        self.session.add(link)
        await self.session.flush()

    async def link(self, link_id: str, *, for_update: bool = False) -> Link | None:
        query = select(Link).where(Link.id == link_id)
        if for_update:
            query = query.with_for_update()
        result: Link | None = await self.session.scalar(query)
        return result
