"""Rate limits as GCRA (generic cell rate algorithm) state rows.

The embedded implementation keeps one row per key and updates it under the row lock in its own
short transaction, so a limit holds across concurrent requests and across nodes sharing one
PostgreSQL. (A Redis implementation behind the same interface serves high-rate limits.)
A limit is `limit` events per `period` seconds, allowing a burst of `limit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import Float, String, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base
from tidings.db.uow import Database
from tidings.kit.clock import Clock


class RateLimitState(Base):
    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    # Theoretical arrival time, in seconds since the epoch.
    tat: Mapped[float] = mapped_column(Float)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: float


def gcra(
    tat: float | None, now: float, limit: int, period: float, cost: int = 1
) -> tuple[Verdict, float]:
    """Pure GCRA step: returns the verdict and the TAT to store (unchanged when denied)."""
    interval = period / limit
    current = max(tat if tat is not None else now, now)
    new_tat = current + interval * cost
    allow_at = new_tat - period
    if allow_at > now:
        return Verdict(False, allow_at - now), current
    return Verdict(True, 0.0), new_tat


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, period: float, cost: int = 1) -> Verdict: ...

    async def peek(self, key: str, limit: int, period: float, cost: int = 1) -> Verdict: ...


class DatabaseRateLimiter:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    def _now(self) -> float:
        when: datetime = self._clock.now()
        return when.timestamp()

    async def hit(self, key: str, limit: int, period: float, cost: int = 1) -> Verdict:
        now = self._now()
        async with self._database.unit_of_work() as uow:
            # Make sure the row exists, then lock it: concurrent first hits on a key must not
            # both insert (PostgreSQL would refuse one) nor both read "no state".
            dialect = uow.session.get_bind().dialect.name
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            await uow.session.execute(
                insert(RateLimitState).values(key=key, tat=0.0).on_conflict_do_nothing()
            )
            row = await uow.session.scalar(
                select(RateLimitState).where(RateLimitState.key == key).with_for_update()
            )
            assert row is not None
            verdict, new_tat = gcra(row.tat or None, now, limit, period, cost)
            if verdict.allowed:
                row.tat = new_tat
            return verdict

    async def peek(self, key: str, limit: int, period: float, cost: int = 1) -> Verdict:
        async with self._database.read_only() as uow:
            tat = await uow.session.scalar(
                select(RateLimitState.tat).where(RateLimitState.key == key)
            )
        verdict, _ = gcra(tat, self._now(), limit, period, cost)
        return verdict
