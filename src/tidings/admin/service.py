"""Operator tokens: create (shown once), list, revoke, and authenticate an admin request."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from tidings.admin.models import OperatorToken
from tidings.db.uow import Database
from tidings.errors import NotFound, Unauthorized, ValidationFailed
from tidings.kit.clock import Clock
from tidings.kit.ids import hash_token

TOKEN_PREFIX = "tdo_"  # recognisable in a leaked log or a secret scanner
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@-]{0,79}")


@dataclass(frozen=True)
class Operator:
    """Who is calling the admin API."""

    token_id: int
    label: str

    @property
    def name(self) -> str:
        """How decisions record this operator (`decided_by`)."""
        return f"operator:{self.label}"


@dataclass(frozen=True)
class IssuedToken:
    token_id: int
    label: str
    token: str  # shown once; only its hash is kept


@dataclass(frozen=True)
class TokenInfo:
    token_id: int
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class OperatorTokens:
    def __init__(self, *, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    async def create(self, label: str) -> IssuedToken:
        if not _LABEL.fullmatch(label):
            raise ValidationFailed(
                "an operator label is 1-80 letters, digits, spaces or . _ @ -, e.g. 'alice'"
            )
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self._database.unit_of_work() as uow:
            row = OperatorToken(
                token_hash=hash_token(token), label=label, created_at=self._clock.now()
            )
            uow.session.add(row)
            await uow.session.flush()
            return IssuedToken(row.id, label, token)

    async def list(self) -> list[TokenInfo]:
        async with self._database.read_only() as uow:
            rows = await uow.session.scalars(select(OperatorToken).order_by(OperatorToken.id))
            return [
                TokenInfo(r.id, r.label, r.created_at, r.last_used_at, r.revoked_at) for r in rows
            ]

    async def revoke(self, token_id: int) -> None:
        async with self._database.unit_of_work() as uow:
            row = await uow.session.get(OperatorToken, token_id, with_for_update=True)
            if row is None:
                raise NotFound(f"no operator token {token_id}")
            if row.revoked_at is None:
                row.revoked_at = self._clock.now()

    async def authenticate(self, authorization: str | None) -> Operator:
        """The operator an `Authorization: Bearer <token>` header names, or Unauthorized."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized(
                "the admin API needs an operator token: Authorization: Bearer <token>"
                " (create one with `tidings admin token create`)"
            )
        async with self._database.unit_of_work() as uow:
            row = await uow.session.scalar(
                select(OperatorToken).where(OperatorToken.token_hash == hash_token(token.strip()))
            )
            if row is None:
                raise Unauthorized("this operator token is not valid")
            if row.revoked_at is not None:
                raise Unauthorized("this operator token was revoked")
            row.last_used_at = self._clock.now()
            return Operator(row.id, row.label)
