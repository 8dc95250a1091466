"""Provisioning and authentication of businesses: WABAs, apps, phone numbers and tokens."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from tidings.accounts.service import check_phone
from tidings.business.models import AccessToken, Business, BusinessApp, BusinessPhone
from tidings.business.repository import BusinessRepository
from tidings.crypto.sealing import Sealer
from tidings.db.uow import Database, UnitOfWork
from tidings.errors import Conflict, Forbidden, NotFound, Unauthorized
from tidings.kit.clock import Clock
from tidings.kit.ids import hash_token

MESSAGING = "whatsapp_business_messaging"
MANAGEMENT = "whatsapp_business_management"
ALL_SCOPES = (MESSAGING, MANAGEMENT)


def graph_id() -> str:
    """A Graph-style numeric id (15 digits, like Meta's)."""
    return str(10**14 + secrets.randbelow(9 * 10**14))


@dataclass(frozen=True)
class Provisioned:
    waba_id: str
    phone_number_id: str
    phone: str
    app_id: str
    access_token: str
    app_secret: str


@dataclass(frozen=True)
class BusinessCaller:
    """Who is calling the Business API: a token of one business."""

    business_id: int
    waba_id: str
    scopes: frozenset[str]
    token_id: int

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise Forbidden(f"this token lacks the {scope} permission")


@dataclass(frozen=True)
class PhoneInfo:
    phone_pk: int
    business_id: int
    waba_id: str
    phone_number_id: str
    phone: str
    verified_name: str

    @property
    def display_phone_number(self) -> str:
        return self.phone.lstrip("+")


class BusinessService:
    def __init__(self, *, database: Database, clock: Clock, sealer: Sealer) -> None:
        self._database = database
        self._clock = clock
        self._sealer = sealer

    # -- provisioning -----------------------------------------------------------------------

    async def check_available(self, raw_phone: str) -> str:
        """The E.164 form of a number no business uses yet."""
        phone = check_phone(raw_phone)
        async with self._database.read_only() as uow:
            taken = await uow.session.scalar(
                select(BusinessPhone.id).where(BusinessPhone.phone == phone)
            )
        if taken is not None:
            raise Conflict(f"{phone} already belongs to a business")
        return phone

    async def verified_name_of(self, raw_phone: str) -> str | None:
        """The verified name of the business that owns this number (public, as on WhatsApp),
        or None when no business does."""
        phone = check_phone(raw_phone)
        async with self._database.read_only() as uow:
            name = await uow.session.scalar(
                select(BusinessPhone.verified_name).where(BusinessPhone.phone == phone)
            )
        return None if name is None else str(name)

    async def create(
        self,
        name: str,
        raw_phone: str,
        *,
        phone_number_id: str | None = None,
        verified_name: str | None = None,
    ) -> Provisioned:
        phone = check_phone(raw_phone)
        now = self._clock.now()
        async with self._database.unit_of_work() as uow:
            repository = BusinessRepository(uow.session)
            existing = await repository.session.scalar(
                select(BusinessPhone.id).where(BusinessPhone.phone == phone)
            )
            if existing is not None:
                raise Conflict(f"{phone} already belongs to a business")
            business = Business(waba_id=graph_id(), name=name, created_at=now)
            repository.add(business)
            await repository.flush()
            app_secret = secrets.token_hex(16)
            app = BusinessApp(
                business_id=business.id,
                app_id=graph_id(),
                app_secret_sealed=self._seal_secret(app_secret, business.waba_id),
                created_at=now,
            )
            number = BusinessPhone(
                business_id=business.id,
                phone_number_id=phone_number_id or graph_id(),
                phone=phone,
                verified_name=verified_name or name,
                journal_cursor=0,
                created_at=now,
            )
            repository.add(app, number)
            token = await self._issue_token(uow, business.id, ALL_SCOPES, "system user", None)
            return Provisioned(
                waba_id=business.waba_id,
                phone_number_id=number.phone_number_id,
                phone=phone,
                app_id=app.app_id,
                access_token=token,
                app_secret=app_secret,
            )

    async def issue_token(
        self,
        waba_id: str,
        scopes: tuple[str, ...],
        *,
        label: str = "",
        ttl: timedelta | None = None,
    ) -> str:
        async with self._database.unit_of_work() as uow:
            business = await BusinessRepository(uow.session).business_by_waba(waba_id)
            if business is None:
                raise NotFound(f"no business with WABA id {waba_id}")
            expires = self._clock.now() + ttl if ttl else None
            return await self._issue_token(uow, business.id, scopes, label, expires)

    async def _issue_token(
        self,
        uow: UnitOfWork,
        business_id: int,
        scopes: tuple[str, ...],
        label: str,
        expires: object,
    ) -> str:
        unknown = set(scopes) - set(ALL_SCOPES)
        if unknown:
            raise Conflict(f"unknown scopes: {', '.join(sorted(unknown))}")
        token = "EAAT" + secrets.token_urlsafe(40)
        BusinessRepository(uow.session).add(
            AccessToken(
                business_id=business_id,
                token_hash=hash_token(token),
                label=label,
                scopes=",".join(scopes),
                created_at=self._clock.now(),
                expires_at=expires,
            )
        )
        return token

    async def revoke_token(self, token: str) -> None:
        async with self._database.unit_of_work() as uow:
            row = await BusinessRepository(uow.session).token(hash_token(token))
            if row is None:
                raise NotFound("no such token")
            row.revoked_at = row.revoked_at or self._clock.now()

    def _seal_secret(self, secret: str, waba_id: str) -> bytes:
        return self._sealer.seal(secret.encode(), f"app-secret/{waba_id}".encode())

    # -- authentication and tenancy ---------------------------------------------------------

    async def authenticate(self, token: str | None) -> BusinessCaller:
        if not token:
            raise Unauthorized(_TOKEN_REQUIRED)
        async with self._database.read_only() as uow:
            repository = BusinessRepository(uow.session)
            row = await repository.token(hash_token(token))
            if row is None:
                raise Unauthorized(_TOKEN_INVALID)
            self._check_token_live(row.revoked_at, row.expires_at)
            business = await repository.business(row.business_id)
            assert business is not None
            return BusinessCaller(
                business_id=business.id,
                waba_id=business.waba_id,
                scopes=frozenset(row.scopes.split(",")),
                token_id=row.id,
            )

    def _check_token_live(self, revoked_at: datetime | None, expires_at: datetime | None) -> None:
        if revoked_at is not None:
            raise Unauthorized(_TOKEN_INVALID)
        if expires_at is not None and expires_at <= self._clock.now():
            raise Unauthorized("Error validating access token: Session has expired")

    async def phone_for(self, caller: BusinessCaller, phone_number_id: str) -> PhoneInfo:
        """The caller's phone number, or NotFound: another business's number looks absent."""
        async with self._database.read_only() as uow:
            number = await BusinessRepository(uow.session).phone(phone_number_id)
            if number is None or number.business_id != caller.business_id:
                raise _no_such_phone(phone_number_id)
            return _info(number, caller.waba_id)

    async def phone_of_token(
        self, token: str | None, phone_number_id: str, scope: str
    ) -> PhoneInfo:
        """`authenticate(token)`, `require(scope)` and `phone_for(caller, phone_number_id)`
        (the same answers, in the same order), in one statement: every send asks it."""
        if not token:
            raise Unauthorized(_TOKEN_REQUIRED)
        row = await BusinessRepository.token_and_phone(
            self._database, hash_token(token), phone_number_id
        )
        if row is None:
            raise Unauthorized(_TOKEN_INVALID)
        self._check_token_live(row.revoked_at, row.expires_at)
        if scope not in row.scopes.split(","):
            raise Forbidden(f"this token lacks the {scope} permission")
        if row.phone_pk is None or row.phone_business_id != row.business_id:
            raise _no_such_phone(phone_number_id)
        return PhoneInfo(
            phone_pk=row.phone_pk,
            business_id=row.business_id,
            waba_id=row.waba_id,
            phone_number_id=phone_number_id,
            phone=row.phone,
            verified_name=row.verified_name,
        )

    async def check_waba(self, caller: BusinessCaller, waba_id: str) -> None:
        if waba_id != caller.waba_id:
            raise NotFound(
                f"Unsupported request. Object with ID '{waba_id}' does not exist, cannot be loaded"
                " due to missing permissions, or does not support this operation."
            )

    async def app_secret(self, waba_id: str) -> str | None:
        """The secret that signs the WABA's webhooks (None: no such business)."""
        sealed = await BusinessRepository.sealed_app_secret(self._database, waba_id)
        if sealed is None:
            return None
        return self._sealer.open(sealed, f"app-secret/{waba_id}".encode()).decode()

    async def all_phones(self) -> list[PhoneInfo]:
        async with self._database.read_only() as uow:
            repository = BusinessRepository(uow.session)
            result = []
            for number in await repository.phones():
                business = await repository.business(number.business_id)
                assert business is not None
                result.append(_info(number, business.waba_id))
            return result

    async def phone_by_number_id(self, phone_number_id: str) -> PhoneInfo:
        async with self._database.read_only() as uow:
            repository = BusinessRepository(uow.session)
            number = await repository.phone(phone_number_id)
            if number is None:
                raise NotFound(f"no business phone number with id {phone_number_id}")
            business = await repository.business(number.business_id)
            assert business is not None
            return _info(number, business.waba_id)


_TOKEN_REQUIRED = "An access token is required to request this resource."
_TOKEN_INVALID = "Invalid OAuth access token - Cannot parse access token"


def _no_such_phone(phone_number_id: str) -> NotFound:
    return NotFound(
        f"Unsupported post request. Object with ID '{phone_number_id}' does not exist,"
        " cannot be loaded due to missing permissions, or does not support this operation."
    )


def _info(number: BusinessPhone, waba_id: str) -> PhoneInfo:
    return PhoneInfo(
        phone_pk=number.id,
        business_id=number.business_id,
        waba_id=waba_id,
        phone_number_id=number.phone_number_id,
        phone=number.phone,
        verified_name=number.verified_name,
    )
