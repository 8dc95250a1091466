"""Accounts use cases: invitations, verification codes, and claiming a number."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta

from tidings.accounts.models import Account, VerificationCode
from tidings.accounts.repository import AccountRepository
from tidings.accounts.verification import VerificationProvider
from tidings.config import VerificationSettings
from tidings.db.ratelimit import RateLimiter
from tidings.db.uow import Database, UnitOfWork
from tidings.errors import NotFound, RateLimited, ValidationFailed
from tidings.kit.clock import Clock
from tidings.kit.ids import hash_code, numeric_code
from tidings.kit.phone import InvalidPhoneNumber, normalize_phone
from tidings.protocol.codes import ErrorCode


def check_phone(raw: str) -> str:
    """The E.164 form of a phone number, or a clear 400."""
    try:
        return normalize_phone(raw)
    except InvalidPhoneNumber as exc:
        raise ValidationFailed(str(exc), code=ErrorCode.INVALID_PHONE_NUMBER) from exc


def not_registered(phone: str) -> NotFound:
    """The error for a phone number with no account on this server."""
    return NotFound(f"{phone} is not registered on this server", code=ErrorCode.UNKNOWN_ACCOUNT)


@dataclass(frozen=True)
class IssuedCode:
    phone: str
    code: str
    expires_at: str


class AccountService:
    def __init__(
        self,
        *,
        database: Database,
        clock: Clock,
        pepper: bytes,
        settings: VerificationSettings,
        provider: VerificationProvider,
        limiter: RateLimiter,
    ) -> None:
        self._database = database
        self._clock = clock
        self._pepper = pepper
        self._settings = settings
        self._provider = provider
        self._limiter = limiter

    # -- codes ------------------------------------------------------------------------------

    async def invite(self, uow: UnitOfWork, raw_phone: str) -> IssuedCode:
        """An operator-issued one-time code (longer-lived than an SMS code)."""
        phone = check_phone(raw_phone)
        return await self._issue(uow, phone, "invite", self._settings.invite_ttl_seconds)

    async def request_code(self, raw_phone: str) -> tuple[str, int]:
        """Send a fresh code through the configured provider; returns (phone, ttl seconds)."""
        phone = check_phone(raw_phone)
        verdict = await self._limiter.hit(
            f"verify-request:{phone}",
            self._settings.max_code_requests,
            self._settings.code_request_window_seconds,
        )
        if not verdict.allowed:
            raise RateLimited(
                "too many codes requested for this number; wait before asking again",
                retry_after=int(verdict.retry_after) + 1,
            )
        async with self._database.unit_of_work() as uow:
            issued = await self._issue(uow, phone, "sms", self._settings.code_ttl_seconds)
            # Sent inside the transaction: if the gateway fails, no unusable code is left behind.
            await self._provider.send_code(phone, issued.code)
        return phone, self._settings.code_ttl_seconds

    async def _issue(self, uow: UnitOfWork, phone: str, source: str, ttl: int) -> IssuedCode:
        now = self._clock.now()
        code = numeric_code(6)
        expires_at = now + timedelta(seconds=ttl)
        await AccountRepository(uow.session).add_code(
            VerificationCode(
                phone=phone,
                code_hash=hash_code(self._pepper, phone, code),
                source=source,
                created_at=now,
                expires_at=expires_at,
            )
        )
        return IssuedCode(phone=phone, code=code, expires_at=expires_at.isoformat())

    # -- registration -----------------------------------------------------------------------

    def _failure_key(self, phone: str) -> str:
        return f"verify-fail:{phone}"

    async def check_not_locked(self, phone: str) -> None:
        """Refuse early once a number has used up its failed attempts."""
        verdict = await self._limiter.peek(
            self._failure_key(phone),
            self._settings.max_failed_attempts,
            self._settings.failed_attempt_window_seconds,
        )
        if not verdict.allowed:
            raise RateLimited(
                "too many wrong codes for this number; wait before trying again",
                retry_after=int(verdict.retry_after) + 1,
            )

    async def record_failure(self, phone: str) -> None:
        """Count a wrong code. Called after the failed transaction has rolled back."""
        await self._limiter.hit(
            self._failure_key(phone),
            self._settings.max_failed_attempts,
            self._settings.failed_attempt_window_seconds,
        )

    async def claim(self, uow: UnitOfWork, phone: str, code: str, account_key: str) -> Account:
        """Spend a valid code for `phone` and return its account, new or re-registered.

        Re-registration keeps the account row (so device ids are never reused) but replaces the
        account key and forgets the old device list: contacts see a new identity.
        """
        repository = AccountRepository(uow.session)
        now = self._clock.now()
        code_hash = hash_code(self._pepper, phone, code.strip())
        match = next(
            (c for c in await repository.live_codes(phone, now) if c.code_hash == code_hash), None
        )
        if match is None:
            if await repository.expired_code_exists(phone, code_hash, now):
                raise ValidationFailed(
                    "this code has expired; ask for a new one", code=ErrorCode.CODE_EXPIRED
                )
            raise ValidationFailed(
                "wrong or already used code for this number", code=ErrorCode.INVALID_CODE
            )
        account = await repository.by_phone(phone, for_update=True)
        if account is None:
            account = await repository.add(
                Account(
                    phone=phone,
                    account_key=account_key,
                    next_device_id=1,
                    device_list_version=0,
                    created_at=now,
                    registered_at=now,
                )
            )
        else:
            account.account_key = account_key
            account.device_list_version = 0
            account.device_list_payload = None
            account.device_list_signature = None
            account.registered_at = now
        match.used_at = now
        match.used_by_account_id = account.id
        await repository.retire_codes(phone, now)
        return account

    # -- lookups used by other domains ------------------------------------------------------

    async def get(self, uow: UnitOfWork, account_id: int, *, for_update: bool = False) -> Account:
        account = await AccountRepository(uow.session).by_id(account_id, for_update=for_update)
        if account is None:
            raise NotFound("no such account")
        return account

    async def find(self, uow: UnitOfWork, raw_phone: str, *, for_update: bool = False) -> Account:
        phone = check_phone(raw_phone)
        account = await AccountRepository(uow.session).by_phone(phone, for_update=for_update)
        if account is None:
            raise not_registered(phone)
        return account

    async def id_of(self, uow: UnitOfWork, raw_phone: str) -> int:
        """The id of the account registered at `raw_phone` (as `find`, without loading it)."""
        phone = check_phone(raw_phone)
        account_id = await AccountRepository(uow.session).id_of_phone(phone)
        if account_id is None:
            raise not_registered(phone)
        return account_id

    async def ids_of(self, uow: UnitOfWork, phones: Collection[str]) -> dict[str, int]:
        """The account ids of the registered phones among `phones` (E.164, as `check_phone`
        answers them), by phone, in one query; an unknown phone is left out
        (`not_registered` is what `find` raises for it)."""
        return await AccountRepository(uow.session).ids_of_phones(phones)

    async def take_device_id(self, uow: UnitOfWork, account_id: int) -> int:
        account = await self.get(uow, account_id, for_update=True)
        device_id = account.next_device_id
        account.next_device_id = device_id + 1
        return device_id

    async def set_device_list(
        self, uow: UnitOfWork, account: Account, version: int, payload: str, signature: str
    ) -> None:
        account.device_list_version = version
        account.device_list_payload = payload
        account.device_list_signature = signature

    # -- blocks -------------------------------------------------------------------------------

    async def block(self, uow: UnitOfWork, account_id: int, raw_phone: str) -> str:
        """`account_id` refuses envelopes from `raw_phone` from now on (idempotent)."""
        phone = check_phone(raw_phone)
        await AccountRepository(uow.session).block(account_id, phone, self._clock.now())
        return phone

    async def unblock(self, uow: UnitOfWork, account_id: int, raw_phone: str) -> str:
        phone = check_phone(raw_phone)
        await AccountRepository(uow.session).unblock(account_id, phone)
        return phone

    async def blocked_phones(self, uow: UnitOfWork, account_id: int) -> list[str]:
        return await AccountRepository(uow.session).blocked_phones(account_id)

    async def blockers(self, uow: UnitOfWork, account_ids: Collection[int], phone: str) -> set[int]:
        """Those of `account_ids` that blocked `phone` (E.164), in one query."""
        return await AccountRepository(uow.session).blockers(account_ids, phone)
