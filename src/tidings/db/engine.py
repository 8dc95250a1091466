"""Engine construction for the embedded default (SQLite) and the scale-out store (PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool

from tidings.db.sqlite_inline import inline_connector

# A pooled PostgreSQL connection idle this long is pinged before it is used again (see
# `ping_idle_connections`).
IDLE_PING_SECONDS = 5.0


def make_engine(
    url: str,
    *,
    echo: bool = False,
    pool_size: int = 10,
    read_only: bool = False,
    idle_ping_seconds: float = IDLE_PING_SECONDS,
) -> AsyncEngine:
    """`read_only` engines (SQLite only) begin deferred transactions, so readers run beside the
    single writer in WAL mode instead of queueing for its lock."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url, echo=echo, begin="BEGIN" if read_only else "BEGIN IMMEDIATE")
    engine = create_async_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size)
    ping_idle_connections(engine.sync_engine, idle_ping_seconds)
    return engine


def ping_idle_connections(
    engine: Engine, idle_seconds: float, clock: Callable[[], float] = time.monotonic
) -> None:
    """Ping a pooled connection before use when it sat idle `idle_seconds` or longer; one that
    fails is replaced by a new connection before anyone uses it.

    A restarted server, a failover or a firewall's idle timeout breaks connections while they
    wait in the pool, and the next unit of work on one would fail. SQLAlchemy's `pre_ping`
    pings at every checkout: a round trip per unit of work, about 280 µs of CPU and 300 µs
    of waiting here (the unit of work with one select: ~900 µs of CPU), and a busy node's
    connections are seldom idle for long."""

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = clock()

    @event.listens_for(engine, "checkout")
    def _taken(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("returned_at")
        if returned is None or clock() - returned < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool replaces the connection and checks out anew
            raise DisconnectionError("an idle pooled connection failed its ping") from exc


def _sqlite_engine(url: str, *, echo: bool, begin: str) -> AsyncEngine:
    # One connection per checkout and BEGIN IMMEDIATE for every transaction: SQLite has a single
    # writer, and taking the write lock up front turns "database is locked" upgrade deadlocks
    # into orderly waiting on busy_timeout.
    # Statements run on the event loop's thread, not aiosqlite's worker (see sqlite_inline).
    engine = create_async_engine(
        url,
        echo=echo,
        pool_size=5,
        max_overflow=5,
        async_creator=inline_connector(url, timeout=30),
    )

    _prepare_sqlite(engine.sync_engine, lambda driver: driver.begin(begin))
    return engine


def sqlite_statement_engine(engine: AsyncEngine, *, begin: str) -> Engine:
    """A synchronous engine on the same SQLite file as `engine`, for `Database`'s units of work.

    Statements already run on the event loop's thread (see sqlite_inline), so what the async
    engine adds per call is greenlet hand-offs: SQLAlchemy's asyncio layer spawns a greenlet
    for every session call and switches out of it for every cursor call. Measured on this
    machine: a select through `AsyncSession.execute` 46-84 µs, through a `Session` on this
    engine 26-29 µs; a unit of work with one select 224-238 µs against 108-120 µs.
    Its pool never makes a checkout wait: a synchronous wait would stop the event loop."""
    twin = create_engine(
        engine.url.set(drivername="sqlite"),
        echo=engine.echo,
        poolclass=QueuePool,
        pool_size=10,
        max_overflow=-1,
        connect_args={"timeout": 30, "check_same_thread": False},
    )
    _prepare_sqlite(twin, lambda driver: driver.execute(begin))
    return twin


def _prepare_sqlite(engine: Engine, start: Callable[[Any], object]) -> None:
    """The pragmas of every connection, and `start(driver_connection)` for every transaction
    (BEGIN or BEGIN IMMEDIATE, issued here: the driver runs in autocommit mode)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        start(connection.connection.driver_connection)
