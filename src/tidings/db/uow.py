"""One unit of work per request or task: only it commits.

Services receive the unit of work, do their reads and writes through repositories, and register
what must happen after the commit (bus wake-ups, live events). Nothing is published for a
transaction that rolls back, and nothing is published before its rows are visible.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from tidings.db.direct import read_first
from tidings.db.direct_pg import DirectSession, first_pg
from tidings.db.engine import sqlite_statement_engine
from tidings.db.sqlite_inline import InlineSession
from tidings.db.wal_flush import WalFlush, commit_without_fsync, wal_of, wrote_anything

log = logging.getLogger(__name__)

AfterCommit = Callable[[], Awaitable[None]]


class UnitOfWork:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._after_commit: list[AfterCommit] = []
        self._once: set[object] = set()

    def after_commit(self, action: AfterCommit) -> None:
        self._after_commit.append(action)

    def after_commit_once(self, key: object, action: AfterCommit) -> None:
        """`after_commit`, unless an action was already registered under `key` in this unit:
        sends that share a unit of work ring their number's worker once."""
        if key not in self._once:
            self._once.add(key)
            self._after_commit.append(action)

    async def _run_after_commit(self) -> None:
        for action in self._after_commit:
            try:
                await action()
            except Exception:  # a lost wake-up is recovered from the database
                log.exception("after-commit action failed")


class Database:
    def __init__(
        self,
        engine: AsyncEngine,
        read_engine: AsyncEngine | None = None,
        *,
        shared_flush: bool = True,
    ) -> None:
        """`shared_flush` (SQLite): units of work commit without an fsync and then wait for
        an fsync of the write-ahead log that started after their commit, shared by every unit
        that committed before it started (see `WalFlush`). Off, each COMMIT does its own."""
        self.engine = engine
        self.read_engine = read_engine or engine
        self._sessions: async_sessionmaker[AsyncSession]
        self._read_sessions: async_sessionmaker[AsyncSession]
        if engine.dialect.name == "sqlite":
            # Units of work run on synchronous twins of the engines (see
            # `sqlite_statement_engine`); the async engines serve migrations and tools.
            writer = sqlite_statement_engine(engine, begin="BEGIN IMMEDIATE")
            reader = (
                writer
                if read_engine is None
                else sqlite_statement_engine(read_engine, begin="BEGIN")
            )
            self._reader: Engine | None = reader
            self._autocommit: AsyncEngine | None = None
            self.statement_engines: tuple[Engine, ...] = tuple(dict.fromkeys((writer, reader)))
            self._sessions = _inline_sessions(writer, autoflush=True)
            wal = wal_of(engine.url.database)
            self._flush: WalFlush | None = (
                WalFlush(wal) if shared_flush and wal is not None else None
            )
            if self._flush is not None:
                commit_without_fsync(writer)
            self._read_sessions = _inline_sessions(reader, autoflush=False)
        else:
            self._flush = None
            self._reader = None
            self.statement_engines = tuple(
                dict.fromkeys((engine.sync_engine, self.read_engine.sync_engine))
            )
            self._sessions = async_sessionmaker(
                engine, class_=DirectSession, expire_on_commit=False, autoflush=True
            )
            self._read_sessions = async_sessionmaker(
                self.read_engine, class_=DirectSession, expire_on_commit=False, autoflush=False
            )
            # A single read needs no transaction: without one it saves the BEGIN and ROLLBACK
            # round trips (`first`).
            self._autocommit = self.read_engine.execution_options(isolation_level="AUTOCOMMIT")
        # SQLite has one writer. Queueing writers here, instead of letting them spin in
        # SQLite's busy handler (which sleeps in growing steps), keeps latency flat under load.
        # One node per SQLite file is enforced at start-up, so an in-process lock suffices.
        self._write_lock: asyncio.Lock | None = (
            asyncio.Lock() if engine.dialect.name == "sqlite" else None
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        # The session closes after the writer's turn ends. A SQLite connection is checked out
        # at the first statement, inside the turn, and its transaction ends with the turn.
        async with self._sessions() as session, self._writer_turn():
            uow = UnitOfWork(session)
            try:
                yield uow
                # Only a unit that changed rows has something in the log to wait for.
                flush = (
                    self._flush
                    if self._flush is not None and wrote_anything(session.sync_session)
                    else None
                )
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
        if flush is not None:
            # Outside the writer's turn: the next writer commits while this one waits. The
            # wait passes the loop as `_pass_the_loop` would.
            await flush.durable()
        else:
            await self._pass_the_loop()
        await uow._run_after_commit()

    def _writer_turn(self) -> contextlib.AbstractAsyncContextManager[object]:
        return self._write_lock if self._write_lock is not None else contextlib.nullcontext()

    @asynccontextmanager
    async def read_only(self, *, then_yield: bool = True) -> AsyncIterator[UnitOfWork]:
        """A unit of work for reads only: never commits, so nothing runs after it. With
        `then_yield` False it does not pass the loop on (see `_pass_the_loop`): for a short
        read whose caller acts on it at once and ends (a push to a device's socket), where
        the two rounds of a busy loop would only delay the delivery."""
        async with self._read_sessions() as session:
            try:
                yield UnitOfWork(session)
            finally:
                await session.rollback()
        if then_yield:
            await self._pass_the_loop()

    async def first(self, statement: Any, params: dict[str, Any]) -> Any:
        """The first row of one Core select (or None), as a `read_only` unit would read it,
        outside any transaction (one statement is atomic): every API request and every device
        request authenticates this way, and a unit of work's session costs several times the
        read. On SQLite a statement marked `direct` runs on a connection of its own (see
        `db.direct.read_first`); on PostgreSQL the connection is in autocommit, which saves
        the BEGIN and ROLLBACK round trips (~130 µs of CPU and ~300 µs of waiting a read)."""
        if self._reader is not None:
            row = read_first(self._reader, statement, params)
            if row is not NotImplemented:
                return row
        if self._autocommit is not None:
            async with self._autocommit.connect() as connection:
                row = await first_pg(connection, statement, params)
                if row is NotImplemented:
                    row = (await connection.execute(statement, params)).first()
                return row
        async with self.read_only() as uow:
            return (await uow.session.execute(statement, params)).first()

    async def _pass_the_loop(self) -> None:
        """Two rounds of the event loop's ready queue after every unit of work on SQLite,
        where nothing inside a unit suspends: without them, work that runs unit after unit (a
        delivery pass, a drain) would hold the loop to its end while requests wait.

        Two, because that is what the async sessions gave, by closing in a shielded task (one
        round to run it, one to wake the unit's task), and the full sustained run depends on
        it: with one round, devices' read receipts timed out 2,213 times (two rounds: 53; the
        async sessions: 63), and closing in place with none cut accepted sends from 435 to
        133-146/s (7 December)."""
        if self._write_lock is not None:
            await asyncio.sleep(0)
            await asyncio.sleep(0)

    async def dispose(self) -> None:
        if self._flush is not None:
            self._flush.close()
        if self.dialect == "sqlite":  # the synchronous twins are ours to close
            for statement_engine in self.statement_engines:
                statement_engine.dispose()
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()


def _inline_sessions(engine: Engine, *, autoflush: bool) -> async_sessionmaker[AsyncSession]:
    class Bound(Session):
        def __init__(self, bind: object = None, **kw: Any) -> None:
            super().__init__(bind=engine, **kw)

    return async_sessionmaker(
        class_=InlineSession, sync_session_class=Bound, expire_on_commit=False, autoflush=autoflush
    )
