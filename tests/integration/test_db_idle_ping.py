"""PostgreSQL's pool pings a connection before use only when it sat idle long enough: a broken
idle connection is replaced unseen, and a busy one pays no round trip."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tidings.db.engine import make_engine, ping_idle_connections

IDLE_SECONDS = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def pool(pg_database: str) -> AsyncIterator[tuple[AsyncEngine, Clock]]:
    clock = Clock()
    engine = create_async_engine(pg_database, pool_size=1, max_overflow=0)
    ping_idle_connections(engine.sync_engine, IDLE_SECONDS, clock)
    yield engine, clock
    await engine.dispose()


async def backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def terminate(pg_database: str, pid: int) -> None:
    """End the server process of a pooled connection, as a restart would, and wait for it."""
    admin = await asyncpg.connect(pg_database.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
    finally:
        await admin.close()


async def broken_after_idling(
    pool: tuple[AsyncEngine, Clock], pg_database: str, seconds: float
) -> int:
    """Use the pool's connection, end its server process, let it idle `seconds`; its pid."""
    engine, clock = pool
    pid = await backend_pid(engine)
    await terminate(pg_database, pid)
    clock.now += seconds
    return pid


async def test_a_broken_idle_connection_is_replaced_before_use(
    pool: tuple[AsyncEngine, Clock], pg_database: str
) -> None:
    first = await broken_after_idling(pool, pg_database, IDLE_SECONDS)

    assert await backend_pid(pool[0]) != first


async def test_a_recently_used_connection_is_not_pinged(
    pool: tuple[AsyncEngine, Clock], pg_database: str
) -> None:
    engine = pool[0]
    first = await broken_after_idling(pool, pg_database, IDLE_SECONDS - 1)

    # Not pinged, so the broken connection is used and fails, once: the pool drops it.
    with pytest.raises(DBAPIError) as failed:
        await backend_pid(engine)
    assert failed.value.connection_invalidated
    assert await backend_pid(engine) != first


async def test_a_healthy_idle_connection_is_kept(
    pool: tuple[AsyncEngine, Clock],
) -> None:
    engine, clock = pool
    first = await backend_pid(engine)
    clock.now += IDLE_SECONDS * 10

    assert await backend_pid(engine) == first


async def test_the_engine_pings_connections_idle_for_its_threshold(pg_database: str) -> None:
    engine = make_engine(pg_database, pool_size=1, idle_ping_seconds=0.0)
    try:
        first = await backend_pid(engine)
        await terminate(pg_database, first)
        assert await backend_pid(engine) != first
    finally:
        await engine.dispose()
