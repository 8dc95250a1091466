"""Device use cases: registration of a primary, keys, signed device lists, removal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tidings.accounts.models import Account
from tidings.accounts.service import AccountService, check_phone
from tidings.config import LimitsSettings
from tidings.crypto.device import verify_one_time_key
from tidings.crypto.device_list import DeviceList, verify_device_list
from tidings.crypto.errors import CryptoError, DeviceListRollback
from tidings.db.ratelimit import RateLimiter
from tidings.db.uow import Database, UnitOfWork
from tidings.devices.models import Device, FallbackKeyRow, OneTimeKeyRow
from tidings.devices.repository import DeviceRepository, DeviceSummary
from tidings.errors import (
    AppError,
    Conflict,
    Forbidden,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from tidings.kit.clock import Clock
from tidings.kit.ids import hash_token, random_token
from tidings.protocol import api
from tidings.protocol.codes import ErrorCode

# Called inside the unit of work with the primary keys of devices that were just removed, so
# other domains (the mailbox) can drop what they hold for them.
RemovalHook = Callable[[UnitOfWork, list[int]], Awaitable[None]]
# Called after commit with (account phone, new list version, the publishing device's key).
ListChangedHook = Callable[[str, int, int], Awaitable[None]]


TOUCH_MEMORY = 100_000  # devices whose last touch a node remembers


@dataclass(frozen=True)
class DeviceContext:
    """Who is calling: an authenticated device."""

    device_pk: int
    device_id: int
    account_id: int
    phone: str
    primary: bool
    status: str


def iso(value: object) -> str | None:
    return value.isoformat() if value is not None else None  # type: ignore[attr-defined]


class DeviceService:
    def __init__(
        self,
        *,
        database: Database,
        clock: Clock,
        accounts: AccountService,
        limiter: RateLimiter,
        limits: LimitsSettings,
    ) -> None:
        self._database = database
        self._clock = clock
        self._accounts = accounts
        self._limiter = limiter
        self._limits = limits
        self.removal_hooks: list[RemovalHook] = []
        self.list_changed_hooks: list[ListChangedHook] = []
        # When this node last wrote each device's last-seen (see `touch`).
        self._touched: dict[int, datetime] = {}

    # -- authentication ---------------------------------------------------------------------

    async def authenticate(
        self, token: str | None, *, allow_pending: bool = False
    ) -> DeviceContext:
        if not token:
            raise Unauthorized("missing device credentials: send `Authorization: Bearer <token>`")
        device = await DeviceRepository.credentials(self._database, hash_token(token))
        if device is None or device.status == "removed":
            raise Unauthorized("invalid or revoked device credentials")
        if device.status == "pending" and not allow_pending:
            raise Forbidden("this device has not been approved by the primary device yet")
        return DeviceContext(
            device_pk=device.id,
            device_id=device.device_id,
            account_id=device.account_id,
            phone=device.phone,
            primary=device.primary,
            status=device.status,
        )

    async def touch(self, ctx: DeviceContext) -> None:
        """Record that the device was seen; at most one write an hour per device.

        A device this node touched within the hour is skipped without a transaction: a device
        that syncs often (a business's API device drains its mailbox after every batch) must
        not queue for the writer each time just to learn there is nothing to write."""
        now = self._clock.now()
        last = self._touched.get(ctx.device_pk)
        if last is not None and now - last < timedelta(hours=1):
            return
        if len(self._touched) >= TOUCH_MEMORY:
            self._touched.clear()  # forgetting only costs a (conditional) write
        self._touched[ctx.device_pk] = now
        async with self._database.unit_of_work() as uow:
            await DeviceRepository(uow.session).touch(ctx.device_pk, now, now - timedelta(hours=1))

    # -- registration -----------------------------------------------------------------------

    async def register(self, request: api.RegisterRequest) -> api.RegisterResponse:
        phone = check_phone(request.phone)
        await self._accounts.check_not_locked(phone)
        check_device_keys(request.device)
        try:
            async with self._database.unit_of_work() as uow:
                account = await self._accounts.claim(uow, phone, request.code, request.account_key)
                removed = await DeviceRepository(uow.session).retire_all(
                    account.id, self._clock.now()
                )
                await self._run_removal_hooks(uow, removed)
                device, token = await self.create_device(
                    uow, account, request.device, primary=True, status="active"
                )
                response = api.RegisterResponse(
                    phone=phone, device_id=device.device_id, device_token=token
                )
        except AppError as exc:
            if exc.code in (ErrorCode.INVALID_CODE, ErrorCode.CODE_EXPIRED):
                await self._accounts.record_failure(phone)
            raise
        return response

    async def create_device(
        self, uow: UnitOfWork, account: Account, keys: api.DeviceKeys, *, primary: bool, status: str
    ) -> tuple[Device, str]:
        device_id = await self._accounts.take_device_id(uow, account.id)
        token = random_token("tdv")
        device = await DeviceRepository(uow.session).add(
            Device(
                account_id=account.id,
                device_id=device_id,
                primary=primary,
                name=keys.name,
                identity_key=keys.identity_key,
                signing_key=keys.signing_key,
                token_hash=hash_token(token),
                status=status,
                created_at=self._clock.now(),
                last_seen_at=self._clock.now(),
            )
        )
        await self._store_keys(uow, device, keys.one_time_keys, keys.fallback_key)
        return device, token

    async def _run_removal_hooks(self, uow: UnitOfWork, device_pks: list[int]) -> None:
        if device_pks:
            for hook in self.removal_hooks:
                await hook(uow, device_pks)

    # -- keys -------------------------------------------------------------------------------

    async def upload_keys(
        self, ctx: DeviceContext, request: api.UploadKeysRequest
    ) -> api.KeyStatus:
        async with self._database.unit_of_work() as uow:
            device = await self._device(uow, ctx)
            await self._store_keys(uow, device, request.one_time_keys, request.fallback_key)
            return await self._key_status(uow, device.id)

    async def key_status(self, ctx: DeviceContext) -> api.KeyStatus:
        async with self._database.read_only() as uow:
            return await self._key_status(uow, ctx.device_pk)

    async def key_status_in(self, uow: UnitOfWork, device_pk: int) -> api.KeyStatus:
        return await self._key_status(uow, device_pk)

    async def one_time_key_count(self, uow: UnitOfWork, device_pk: int) -> int:
        return await DeviceRepository(uow.session).count_one_time_keys(device_pk)

    async def _key_status(self, uow: UnitOfWork, device_pk: int) -> api.KeyStatus:
        count, has_fallback, fallback_used = await DeviceRepository(uow.session).key_counts(
            device_pk
        )
        return api.KeyStatus(
            one_time_key_count=count,
            fallback_key_used=fallback_used,
            has_fallback_key=has_fallback,
        )

    async def _store_keys(
        self,
        uow: UnitOfWork,
        device: Device,
        one_time_keys: Sequence[api.OneTimeKey],
        fallback_key: api.OneTimeKey | None,
    ) -> None:
        """Idempotent on key id: re-uploading the same key is fine, a different key under a
        published id is refused (a client that did so would break session set-up)."""
        for key in [*one_time_keys, *([fallback_key] if fallback_key else [])]:
            try:
                verify_one_time_key(device.signing_key, key)
            except CryptoError as exc:
                raise ValidationFailed(
                    f"one-time key {key.key_id!r} is not signed by this device's signing key",
                    code=ErrorCode.BAD_SIGNATURE,
                ) from exc
        ids = [key.key_id for key in one_time_keys]
        if len(set(ids)) != len(ids):
            raise ValidationFailed("the same key_id appears twice in one upload")
        repository = DeviceRepository(uow.session)
        existing = await repository.one_time_keys_by_id(device.id, ids)
        fresh: list[OneTimeKeyRow] = []
        for key in one_time_keys:
            known = existing.get(key.key_id)
            if known is not None:
                if known.public_key != key.key:
                    raise Conflict(
                        f"key_id {key.key_id!r} was already published with a different key",
                        details={"key_id": key.key_id},
                    )
                continue
            fresh.append(
                OneTimeKeyRow(
                    device_pk=device.id,
                    key_id=key.key_id,
                    public_key=key.key,
                    signature=key.signature,
                )
            )
        if fresh:
            if await repository.count_one_time_keys(device.id) + len(fresh) > api.MAX_ONE_TIME_KEYS:
                raise ValidationFailed(
                    f"a device may hold at most {api.MAX_ONE_TIME_KEYS} unclaimed one-time keys"
                )
            await repository.add_one_time_keys(fresh)
        if fallback_key is not None:
            await repository.put_fallback_key(
                FallbackKeyRow(
                    device_pk=device.id,
                    key_id=fallback_key.key_id,
                    public_key=fallback_key.key,
                    signature=fallback_key.signature,
                )
            )

    async def claim_keys(
        self, ctx: DeviceContext, request: api.ClaimKeysRequest
    ) -> api.ClaimKeysResponse:
        verdict = await self._limiter.hit(
            f"key-claim:{ctx.device_pk}", self._limits.key_claims_per_minute, 60
        )
        if not verdict.allowed:
            raise RateLimited(
                "too many key claims from this device", retry_after=int(verdict.retry_after) + 1
            )
        async with self._database.unit_of_work() as uow:
            account = await self._accounts.find(uow, request.phone)
            repository = DeviceRepository(uow.session)
            devices = await repository.of_account(account.id)
            if request.device_ids is not None:
                wanted = set(request.device_ids)
                devices = [d for d in devices if d.device_id in wanted]
            claimed: list[api.ClaimedDevice] = []
            for device in devices:
                if device.id == ctx.device_pk:
                    continue
                claimed.append(await self._claim_one(repository, device))
            return api.ClaimKeysResponse(phone=account.phone, devices=claimed)

    async def _claim_one(self, repository: DeviceRepository, device: Device) -> api.ClaimedDevice:
        key: api.ClaimedKey | None = None
        row = await repository.take_one_time_key(device.id)
        if row is not None:
            key = api.ClaimedKey(
                key_id=row.key_id, key=row.public_key, signature=row.signature, fallback=False
            )
        else:
            fallback = await repository.fallback_key(device.id, for_update=True)
            if fallback is not None:
                fallback.used_at = fallback.used_at or self._clock.now()
                key = api.ClaimedKey(
                    key_id=fallback.key_id,
                    key=fallback.public_key,
                    signature=fallback.signature,
                    fallback=True,
                )
        return api.ClaimedDevice(
            device_id=device.device_id,
            identity_key=device.identity_key,
            signing_key=device.signing_key,
            one_time_key=key,
        )

    # -- device lists -----------------------------------------------------------------------

    async def device_list(self, ctx: DeviceContext, raw_phone: str) -> api.DeviceListResponse:
        async with self._database.read_only() as uow:
            account = await self._accounts.find(uow, raw_phone)
            devices = await DeviceRepository(uow.session).of_account(account.id)
            own = account.id == ctx.account_id
            signed = (
                api.SignedDeviceList(
                    payload=account.device_list_payload, signature=account.device_list_signature
                )
                if account.device_list_payload and account.device_list_signature
                else None
            )
            return api.DeviceListResponse(
                phone=account.phone,
                account_key=account.account_key,
                signed_list=signed,
                devices=[
                    api.DeviceInfo(
                        device_id=d.device_id,
                        identity_key=d.identity_key,
                        signing_key=d.signing_key,
                        primary=d.primary,
                        name=d.name if own else None,
                        created_at=iso(d.created_at) if own else None,
                        last_seen_at=iso(d.last_seen_at) if own else None,
                    )
                    for d in devices
                ],
            )

    async def publish_device_list(self, ctx: DeviceContext, signed: api.SignedDeviceList) -> int:
        """The primary publishes a new signed list. Devices it leaves out are removed."""
        self._require_primary(ctx)
        async with self._database.unit_of_work() as uow:
            account = await self._accounts.get(uow, ctx.account_id, for_update=True)
            listed = self.verified_list(account, signed)
            repository = DeviceRepository(uow.session)
            active = {d.device_id: d for d in await repository.of_account(account.id)}
            check_listed_devices(listed, active)
            if ctx.device_id not in {entry.device_id for entry in listed.devices}:
                raise ValidationFailed(
                    "the list must include the primary device that signs it",
                    code=ErrorCode.INVALID_DEVICE_LIST,
                )
            keep = {entry.device_id for entry in listed.devices}
            removed = [d for device_id, d in active.items() if device_id not in keep]
            now = self._clock.now()
            for device in removed:
                device.status = "removed"
                device.removed_at = now
            await repository.delete_keys([d.id for d in removed])
            await self._run_removal_hooks(uow, [d.id for d in removed])
            await self._accounts.set_device_list(
                uow, account, listed.version, signed.payload, signed.signature
            )
            self.announce_list(uow, account.phone, listed.version, ctx.device_pk)
            return listed.version

    def verified_list(self, account: Account, signed: api.SignedDeviceList) -> DeviceList:
        try:
            listed = verify_device_list(
                signed,
                account_key=account.account_key,
                expected_account=account.phone,
                min_version=account.device_list_version + 1,
            )
        except DeviceListRollback as exc:
            raise Conflict(
                f"device list version must be above {account.device_list_version}",
                code=ErrorCode.STALE_DEVICE_LIST,
                details={"current_version": account.device_list_version},
            ) from exc
        except CryptoError as exc:
            raise ValidationFailed(
                f"device list rejected: {exc}", code=ErrorCode.BAD_SIGNATURE
            ) from exc
        if len(listed.devices) > self._limits.max_companions + 1:
            raise ValidationFailed(
                "an account may have a primary and at most"
                f" {self._limits.max_companions} companions",
                code=ErrorCode.DEVICE_LIMIT,
            )
        return listed

    def announce_list(self, uow: UnitOfWork, phone: str, version: int, publisher_pk: int) -> None:
        async def notify() -> None:
            for hook in self.list_changed_hooks:
                await hook(phone, version, publisher_pk)

        uow.after_commit(notify)

    def _require_primary(self, ctx: DeviceContext) -> None:
        if not ctx.primary:
            raise Forbidden("only the primary device can change the device list")

    async def _device(self, uow: UnitOfWork, ctx: DeviceContext) -> Device:
        device = await DeviceRepository(uow.session).by_pk(ctx.device_pk)
        if device is None or device.status == "removed":
            raise Unauthorized("invalid or revoked device credentials")
        return device

    async def active_device_pks(self, uow: UnitOfWork, account_id: int) -> list[int]:
        """The row ids of the account's active devices, in device id order."""
        return await DeviceRepository(uow.session).active_pks(account_id)

    async def all_devices_of(
        self, uow: UnitOfWork, account_ids: Collection[int]
    ) -> dict[int, list[DeviceSummary]]:
        """Every device (active, pending and removed) of each of `account_ids`, in device id
        order, in one query; an account without devices maps to an empty list."""
        found: dict[int, list[DeviceSummary]] = {account_id: [] for account_id in account_ids}
        for device in await DeviceRepository(uow.session).summaries_of_accounts(found):
            found[device.account_id].append(device)
        return found


def check_device_keys(keys: api.DeviceKeys) -> None:
    if keys.fallback_key is None and not keys.one_time_keys:
        raise ValidationFailed("a new device must publish one-time keys or a fallback key")


def check_listed_devices(listed: DeviceList, known: dict[int, Device]) -> None:
    """Every device in a signed list must exist with exactly the keys the server holds."""
    for entry in listed.devices:
        device = known.get(entry.device_id)
        if device is None:
            raise ValidationFailed(
                f"device {entry.device_id} in the list is not an active device of this account",
                code=ErrorCode.INVALID_DEVICE_LIST,
            )
        if (device.identity_key, device.signing_key) != (entry.identity_key, entry.signing_key):
            raise ValidationFailed(
                f"keys of device {entry.device_id} in the list differ from the device's own",
                code=ErrorCode.INVALID_DEVICE_LIST,
            )
