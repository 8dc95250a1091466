"""Linking a companion device to an account.

1. The primary opens a link and shows a code: the server's link id plus a secret the server
   never sees.
2. The companion joins with its public keys and an HMAC over them keyed by the secret. The
   server files it as a pending device.
3. The primary checks the HMAC (so the server cannot slip in its own device), signs a new device
   list that includes the companion, and approves with a second HMAC binding the account key and
   the list, which lets the companion trust them without trusting the server.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta

from tidings.accounts.service import AccountService
from tidings.config import LimitsSettings
from tidings.db.uow import Database, UnitOfWork
from tidings.devices.models import Link
from tidings.devices.repository import DeviceRepository
from tidings.devices.service import (
    DeviceContext,
    DeviceService,
    check_device_keys,
    check_listed_devices,
)
from tidings.errors import Conflict, Forbidden, NotFound, ValidationFailed
from tidings.kit.clock import Clock
from tidings.protocol import api
from tidings.protocol.codes import ErrorCode

LinkChanged = Callable[[str], Awaitable[None]]


def link_topic(link_id: str) -> str:
    return f"link.{link_id}"


class LinkService:
    def __init__(
        self,
        *,
        database: Database,
        clock: Clock,
        accounts: AccountService,
        devices: DeviceService,
        limits: LimitsSettings,
        on_change: LinkChanged,
    ) -> None:
        self._database = database
        self._clock = clock
        self._accounts = accounts
        self._devices = devices
        self._limits = limits
        self._on_change = on_change

    async def open(self, ctx: DeviceContext) -> api.LinkCreated:
        if not ctx.primary:
            raise Forbidden("only the primary device can link a companion")
        async with self._database.unit_of_work() as uow:
            await self._check_room(uow, ctx.account_id)
            now = self._clock.now()
            link = Link(
                # Hex, never starting with "-": the code is typed on command lines.
                id=secrets.token_hex(16),
                account_id=ctx.account_id,
                status="waiting",
                created_at=now,
                expires_at=now + timedelta(seconds=self._limits.link_ttl_seconds),
            )
            await DeviceRepository(uow.session).add_link(link)
            return api.LinkCreated(link_id=link.id, expires_at=link.expires_at.isoformat())

    async def join(self, link_id: str, request: api.LinkJoinRequest) -> api.LinkJoined:
        check_device_keys(request.device)
        async with self._database.unit_of_work() as uow:
            link = await self._live_link(uow, link_id, expect="waiting")
            await self._check_room(uow, link.account_id)
            account = await self._accounts.get(uow, link.account_id)
            device, token = await self._devices.create_device(
                uow, account, request.device, primary=False, status="pending"
            )
            link.status = "joined"
            link.device_pk = device.id
            link.join_request = json.dumps(
                {
                    "device": request.device.model_dump(),
                    "proof": request.proof,
                    "device_id": device.device_id,
                }
            )
            self._notify(uow, link.id)
            return api.LinkJoined(
                device_id=device.device_id, device_token=token, phone=account.phone
            )

    async def state(self, link_id: str, ctx: DeviceContext) -> api.LinkState:
        async with self._database.unit_of_work() as uow:
            link = await self._link_for(uow, link_id, ctx)
            await self._expire_if_due(uow, link)
            return self._state_of(link, for_primary=ctx.primary)

    async def approve(
        self, link_id: str, ctx: DeviceContext, request: api.LinkApproveRequest
    ) -> api.LinkState:
        async with self._database.unit_of_work() as uow:
            link = await self._link_for(uow, link_id, ctx, primary_only=True)
            link = await self._live_link(uow, link.id, expect="joined")
            account = await self._accounts.get(uow, link.account_id, for_update=True)
            if request.account_key != account.account_key:
                raise ValidationFailed(
                    "account_key is not this account's key", code=ErrorCode.BAD_SIGNATURE
                )
            listed = self._devices.verified_list(account, request.signed_list)
            repository = DeviceRepository(uow.session)
            known = {d.device_id: d for d in await repository.of_account(account.id)}
            companion = await repository.by_pk(link.device_pk or 0)
            if companion is None or companion.status != "pending":
                raise Conflict("the joined device is gone", code=ErrorCode.LINK_STATE)
            known[companion.device_id] = companion
            check_listed_devices(listed, known)
            if {e.device_id for e in listed.devices} != set(known):
                raise ValidationFailed(
                    "the list must hold every current device plus the new companion",
                    code=ErrorCode.INVALID_DEVICE_LIST,
                )
            companion.status = "active"
            await self._accounts.set_device_list(
                uow,
                account,
                listed.version,
                request.signed_list.payload,
                request.signed_list.signature,
            )
            link.status = "approved"
            link.approval = json.dumps(
                {
                    "signed_list": request.signed_list.model_dump(),
                    "account_key": request.account_key,
                    "proof": request.proof,
                }
            )
            self._devices.announce_list(uow, account.phone, listed.version, ctx.device_pk)
            self._notify(uow, link.id)
            return self._state_of(link, for_primary=True)

    async def cancel(self, link_id: str, ctx: DeviceContext) -> api.LinkState:
        async with self._database.unit_of_work() as uow:
            link = await self._link_for(uow, link_id, ctx, primary_only=True)
            if link.status not in ("waiting", "joined"):
                raise Conflict(f"the link is already {link.status}", code=ErrorCode.LINK_STATE)
            await self._close(uow, link, "rejected")
            return self._state_of(link, for_primary=True)

    # -- helpers ----------------------------------------------------------------------------

    async def _check_room(self, uow: UnitOfWork, account_id: int) -> None:
        devices = await DeviceRepository(uow.session).of_account(account_id, ("active", "pending"))
        companions = [d for d in devices if not d.primary]
        if len(companions) >= self._limits.max_companions:
            raise Conflict(
                f"this account already has {len(companions)} companion devices (the limit);"
                " remove one first",
                code=ErrorCode.DEVICE_LIMIT,
            )

    async def _live_link(self, uow: UnitOfWork, link_id: str, *, expect: str) -> Link:
        link = await DeviceRepository(uow.session).link(link_id, for_update=True)
        if link is None:
            raise NotFound("no such link code; check it was typed correctly")
        if await self._expire_if_due(uow, link):
            raise Conflict(
                "this link code has expired; show a new one", code=ErrorCode.LINK_EXPIRED
            )
        if link.status != expect:
            raise Conflict(f"the link is {link.status}, not {expect}", code=ErrorCode.LINK_STATE)
        return link

    async def _link_for(
        self, uow: UnitOfWork, link_id: str, ctx: DeviceContext, *, primary_only: bool = False
    ) -> Link:
        link = await DeviceRepository(uow.session).link(link_id, for_update=True)
        if link is None or link.account_id != ctx.account_id:
            raise NotFound("no such link")
        is_owner = ctx.primary
        is_companion = link.device_pk == ctx.device_pk
        if not (is_owner or (is_companion and not primary_only)):
            raise NotFound("no such link")
        return link

    async def _expire_if_due(self, uow: UnitOfWork, link: Link) -> bool:
        if link.status in ("waiting", "joined") and link.expires_at <= self._clock.now():
            await self._close(uow, link, "expired")
            return True
        return link.status == "expired"

    async def _close(self, uow: UnitOfWork, link: Link, status: str) -> None:
        link.status = status
        if link.device_pk is not None:
            device = await DeviceRepository(uow.session).by_pk(link.device_pk)
            if device is not None and device.status == "pending":
                device.status = "removed"
                device.removed_at = self._clock.now()
                await DeviceRepository(uow.session).delete_keys([device.id])
        self._notify(uow, link.id)

    def _notify(self, uow: UnitOfWork, link_id: str) -> None:
        async def ring() -> None:
            await self._on_change(link_id)

        uow.after_commit(ring)

    def _state_of(self, link: Link, *, for_primary: bool) -> api.LinkState:
        joined = json.loads(link.join_request) if link.join_request else None
        approval = json.loads(link.approval) if link.approval else None
        return api.LinkState(
            link_id=link.id,
            status=link.status,  # type: ignore[arg-type]
            expires_at=link.expires_at.isoformat(),
            device_id=joined["device_id"] if joined else None,
            device=api.DeviceKeys.model_validate(joined["device"])
            if joined and for_primary
            else None,
            join_proof=joined["proof"] if joined and for_primary else None,
            signed_list=api.SignedDeviceList.model_validate(approval["signed_list"])
            if approval
            else None,
            account_key=approval["account_key"] if approval else None,
            approve_proof=approval["proof"] if approval else None,
        )
