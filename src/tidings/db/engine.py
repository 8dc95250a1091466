"""Engine construction for the embedded default (SQLite) and the scale-out store (PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

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

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.connection.driver_connection.begin(begin)

    return engine
