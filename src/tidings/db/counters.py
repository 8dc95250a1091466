"""Send-policy rate counters (throughput, pair rate), stepped atomically in a shared store.

The pure core (`tidings.policy.throughput`) describes a counter as one integer, the GCRA
theoretical arrival time in microseconds. Several server processes share each counter, so a
"read the state, decide, write it back" step would admit too many (measured: 24x). Both stores
here take the whole step atomically and hand back only the verdict
(`tidings.policy.throughput.CounterVerdict`), which `evaluate` turns into the reason:

- `DatabaseCounters` steps a `policy_counters` row under its row lock *inside the send's own
  transaction*, in one upsert statement: the step commits or rolls back with the message row,
  and concurrent sends on one counter queue on the lock. (The generic `DatabaseRateLimiter`
  runs its own transaction, which on SQLite would wait for the send's write lock forever.)
- `RedisCounters` runs one Lua script per step, for nodes sharing Redis. A step committed in
  Redis stays taken even if the send's transaction later fails (the sender did reach the
  edge, as with Meta).

Both use integer microseconds (the `RateLimiter` protocol works in float seconds, where 80
steps of 1/80 s do not add up to exactly one second and the 80th message of a burst could be
refused).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import redis.asyncio as aioredis
from sqlalchemy import BigInteger, String, bindparam, case, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base
from tidings.db.direct import direct
from tidings.policy.throughput import CounterState, CounterVerdict, RateLimit, gcra, to_micros


class PolicyCounter(Base):
    __tablename__ = "policy_counters"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    tat_us: Mapped[int] = mapped_column(BigInteger)  # theoretical arrival time, µs since epoch


class CounterStore(Protocol):
    async def step(
        self,
        session: AsyncSession,
        key: str,
        limit: RateLimit,
        now: datetime,
    ) -> CounterVerdict:
        """Count one event on `key` at `now` if `limit` allows it; report the verdict."""
        ...

    async def peek(
        self, session: AsyncSession, key: str, limit: RateLimit, now: datetime
    ) -> CounterVerdict:
        """The verdict `step` would give now, counting nothing (a preflight asks this)."""
        ...

    async def close(self) -> None: ...


def _upsert_step(insert: Any) -> Any:
    """One GCRA step as a single statement: create the row at its first step, else advance it
    under its row lock only if the step is allowed, and hand back the new TAT (no row when
    refused). `cutoff` is the latest stored TAT that still admits a step at `now`:
    max(tat, now) + interval - tolerance <= now  <=>  tat <= now + tolerance - interval,
    since tolerance >= interval (a burst of at least 1)."""
    table = PolicyCounter.__table__
    tat = table.c.tat_us
    now = bindparam("now", type_=BigInteger)
    advanced = case((tat > now, tat), else_=now) + bindparam("interval", type_=BigInteger)
    return (
        insert(table)
        .values(key=bindparam("key"), tat_us=bindparam("first", type_=BigInteger))
        .on_conflict_do_update(
            index_elements=[table.c.key],
            set_={"tat_us": advanced},
            where=tat <= bindparam("cutoff", type_=BigInteger),
        )
        .returning(tat)
    )


_STEP = {"sqlite": direct(_upsert_step(sqlite_insert)), "postgresql": _upsert_step(pg_insert)}
_TAT = direct(
    select(PolicyCounter.__table__.c.tat_us).where(
        PolicyCounter.__table__.c.key == bindparam("key")
    )
)


class DatabaseCounters:
    async def step(
        self,
        session: AsyncSession,
        key: str,
        limit: RateLimit,
        now: datetime,
    ) -> CounterVerdict:
        # One statement (the per-send hot path): the upsert takes the row lock, so concurrent
        # steps of one counter queue on it, and two first steps cannot both find it idle.
        now_us = to_micros(now)
        stepped = await session.execute(
            _STEP[session.get_bind().dialect.name],
            {
                "key": key,
                "first": now_us + limit.interval_us,
                "now": now_us,
                "interval": limit.interval_us,
                "cutoff": now_us + limit.tolerance_us - limit.interval_us,
            },
        )
        if stepped.first() is not None:
            return CounterVerdict(True)
        # Refused: the row exists and is locked by this transaction; say when to retry.
        tat_us = await session.scalar(_TAT, {"key": key})
        result = gcra(CounterState(tat_us or 0), limit, now)
        return CounterVerdict(False, result.retry_after)

    async def peek(
        self, session: AsyncSession, key: str, limit: RateLimit, now: datetime
    ) -> CounterVerdict:
        tat_us = await session.scalar(_TAT, {"key": key})
        result = gcra(CounterState(tat_us or 0), limit, now)
        return CounterVerdict(result.allowed, result.retry_after)

    async def close(self) -> None:
        return None


# KEYS[1] = counter; ARGV = now_us, interval_us, tolerance_us (integers as strings).
# Lua numbers are doubles: exact for integers below 2^53 (µs since 1970 are ~2^51), but
# tostring() would print them in %.14g, so the value is formatted with %d before storing.
_GCRA_US = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if allow_at > now then
  return {0, string.format('%d', allow_at - now)}
end
local ttl_ms = math.ceil((new_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', ttl_ms)
return {1, '0'}
"""


class RedisCounters:
    def __init__(self, url: str, prefix: str = "tidings:policy:") -> None:
        self._client = aioredis.from_url(url, decode_responses=True)
        self._prefix = prefix
        self._script = self._client.register_script(_GCRA_US)

    async def step(
        self,
        session: AsyncSession,
        key: str,
        limit: RateLimit,
        now: datetime,
    ) -> CounterVerdict:
        allowed, retry_us = await self._script(
            keys=[self._prefix + key],
            args=[
                str(to_micros(now)),
                str(limit.interval_us),
                str(limit.tolerance_us),
            ],
        )
        return CounterVerdict(bool(int(allowed)), int(retry_us) / 1_000_000)

    async def peek(
        self, session: AsyncSession, key: str, limit: RateLimit, now: datetime
    ) -> CounterVerdict:
        tat = await self._client.get(self._prefix + key)
        result = gcra(CounterState(int(tat or 0)), limit, now)
        return CounterVerdict(result.allowed, result.retry_after)

    async def close(self) -> None:
        await self._client.aclose()
