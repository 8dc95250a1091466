"""Engine construction for the embedded default (SQLite) and the scale-out store (PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool

from tidings.db.sqlite_inline import inline_connector


def make_engine(
    url: str, *, echo: bool = False, pool_size: int = 10, read_only: bool = False
) -> AsyncEngine:
    """`read_only` engines (SQLite only) begin deferred transactions, so readers run beside the
    single writer in WAL mode instead of queueing for its lock."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url, echo=echo, begin="BEGIN" if read_only else "BEGIN IMMEDIATE")
    return create_async_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )


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
