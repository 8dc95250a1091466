"""Idempotency keys on sends (beyond Meta, after Stripe's): a client that retries
`POST /{phone_number_id}/messages` with the same `Idempotency-Key` header gets the first
response back, byte for byte, and the customer gets one message.

    reserve(scope, fingerprint)
     ├─ new key, or one past its 24 h      → Claim: run the send, then
     │                                          complete(claim, status, body)  2xx and 4xx, kept
     │                                          release(claim)                 5xx, crash: forgotten
     ├─ same body, answered                → Replay(status, body)
     ├─ same body, still running           → KeyInProgress  (the client retries a moment later)
     └─ different body                     → KeyReused      (a client bug: never guess which)

Keys are scoped to (business, phone number id): two numbers of one business, or two businesses,
never see each other's keys.

**Why the claim is its own transaction.** Two concurrent requests with one key must not both
send, so the key is claimed (insert-or-conflict on the unique row) and committed *before* the
send starts: on PostgreSQL the second insert waits for the first to commit and then finds the
row; on SQLite the single writer serialises them. The send's own transaction then runs as
usual, and the response is stored in a third one.

**Why the claim has a lease.** If the process dies between the send and storing the response,
the row would say "in progress" for 24 h. After `lease` (far longer than a send takes) another
request may take the key over. That trades a possible duplicate after a crash, in a window of
milliseconds, for a key that is not blocked for a day.

Expired rows are reused in place when their key comes back, and purged at most once per
`purge_every` by the next reservation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tidings.business.models import IdempotencyKey
from tidings.db.uow import Database, UnitOfWork
from tidings.errors import AppError, Conflict, ValidationFailed
from tidings.kit.clock import Clock

log = logging.getLogger(__name__)

KEY_TTL = timedelta(hours=24)
LEASE = timedelta(minutes=2)
PURGE_EVERY = timedelta(hours=1)
KEY_MAX_LENGTH = 255


class KeyInProgress(Conflict):
    """Another request with this key is still running; its response is not known yet."""


class KeyReused(AppError):
    """The key was first used with a different request body."""

    status = 422


@dataclass(frozen=True)
class KeyScope:
    business_id: int
    phone_number_id: str
    key: str


@dataclass(frozen=True)
class Claim:
    """This request holds the key: it must `complete` or `release` it."""

    record_id: int
    owner: str


@dataclass(frozen=True)
class Replay:
    """The stored response of the request that first used the key."""

    status: int
    body: str


def check_key(value: str) -> str:
    """The header's value if it is 1-255 printable ASCII characters, else ValidationFailed."""
    if not 0 < len(value) <= KEY_MAX_LENGTH or not all(" " <= ch <= "~" for ch in value):
        raise ValidationFailed(
            f"Idempotency-Key must be 1 to {KEY_MAX_LENGTH} printable ASCII characters"
        )
    return value


def request_fingerprint(raw_body: bytes) -> str:
    """SHA-256 of the body as canonical JSON (key order and spacing do not matter); a body that
    is not JSON is hashed as sent."""
    try:
        canonical = json.dumps(
            json.loads(raw_body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    except (UnicodeDecodeError, json.JSONDecodeError):
        canonical = raw_body
    return hashlib.sha256(canonical).hexdigest()


class IdempotencyKeys:
    def __init__(
        self,
        *,
        database: Database,
        clock: Clock,
        ttl: timedelta = KEY_TTL,
        lease: timedelta = LEASE,
        purge_every: timedelta = PURGE_EVERY,
    ) -> None:
        self._database = database
        self._clock = clock
        self._ttl = ttl
        self._lease = lease
        self._purge_every = purge_every
        self._next_purge: datetime | None = None

    async def reserve(self, scope: KeyScope, fingerprint: str) -> Claim | Replay:
        """Claim the key for this request, or say why not (see the module docstring)."""
        now = self._clock.now()
        if self._next_purge is None or now >= self._next_purge:
            self._next_purge = now + self._purge_every
            await self.purge_expired()
        owner = secrets.token_hex(16)
        async with self._database.unit_of_work() as uow:
            await self._insert_if_absent(uow, scope, fingerprint, owner, now)
            row = await uow.session.scalar(
                select(IdempotencyKey)
                .where(
                    IdempotencyKey.business_id == scope.business_id,
                    IdempotencyKey.phone_number_id == scope.phone_number_id,
                    IdempotencyKey.key == scope.key,
                )
                .with_for_update()
            )
            assert row is not None  # inserted above, or already there
            if row.owner == owner:
                return Claim(row.id, owner)
            if row.expires_at <= now:
                self._take_over(row, fingerprint, owner, now, fresh=True)
                return Claim(row.id, owner)
            if row.request_hash != fingerprint:
                raise KeyReused(
                    "This Idempotency-Key was already used with a different request; use a new"
                    " key for a new request"
                )
            if row.response_status is not None and row.response_body is not None:
                return Replay(row.response_status, row.response_body)
            if row.lease_until is not None and row.lease_until > now:
                raise KeyInProgress(
                    "A request with this Idempotency-Key is still being processed; retry shortly"
                )
            log.warning("idempotency key %s: taking over a lapsed claim", row.id)
            self._take_over(row, fingerprint, owner, now, fresh=False)
            return Claim(row.id, owner)

    async def complete(self, claim: Claim, status: int, body: str) -> None:
        """Store the response for replays (only while this request still holds the claim)."""
        async with self._database.unit_of_work() as uow:
            result = await uow.session.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.id == claim.record_id, IdempotencyKey.owner == claim.owner)
                .values(response_status=status, response_body=body, lease_until=None)
            )
        if not _rows(result):
            log.warning("idempotency key %s: claim lapsed before the response", claim.record_id)

    async def release(self, claim: Claim) -> None:
        """Forget the key: the request failed in a way a retry may fix."""
        async with self._database.unit_of_work() as uow:
            await uow.session.execute(
                delete(IdempotencyKey).where(
                    IdempotencyKey.id == claim.record_id, IdempotencyKey.owner == claim.owner
                )
            )

    async def purge_expired(self) -> int:
        async with self._database.unit_of_work() as uow:
            result = await uow.session.execute(
                delete(IdempotencyKey).where(IdempotencyKey.expires_at <= self._clock.now())
            )
        return _rows(result)

    async def _insert_if_absent(
        self, uow: UnitOfWork, scope: KeyScope, fingerprint: str, owner: str, now: datetime
    ) -> None:
        # On a conflict the existing row wins; the caller compares owners to learn who won.
        insert = pg_insert if uow.session.get_bind().dialect.name == "postgresql" else sqlite_insert
        await uow.session.execute(
            insert(IdempotencyKey)
            .values(
                business_id=scope.business_id,
                phone_number_id=scope.phone_number_id,
                key=scope.key,
                request_hash=fingerprint,
                owner=owner,
                lease_until=now + self._lease,
                created_at=now,
                expires_at=now + self._ttl,
            )
            .on_conflict_do_nothing()
        )

    def _take_over(
        self, row: IdempotencyKey, fingerprint: str, owner: str, now: datetime, *, fresh: bool
    ) -> None:
        """Claim an existing row: an expired key starts a new 24 h; a lapsed claim keeps its."""
        row.request_hash = fingerprint
        row.owner = owner
        row.lease_until = now + self._lease
        row.response_status = None
        row.response_body = None
        if fresh:
            row.created_at = now
            row.expires_at = now + self._ttl


def _rows(result: object) -> int:
    count = getattr(result, "rowcount", 0)
    return int(count) if isinstance(count, int) else 0
