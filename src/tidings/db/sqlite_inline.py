"""SQLite for SQLAlchemy's aiosqlite dialect, run on the event loop's own thread.

aiosqlite runs every call in a worker thread: opening a cursor, executing, fetching and closing
are four hand-offs per statement, and each hand-off waits for the GIL while the event loop is
busy (up to the interpreter's 5 ms switch interval). Under load that, not SQLite, was most of
a request's time. SQLite statements here take microseconds and a commit one fsync, so running
them inline is cheaper than handing them off; the engine still speaks the aiosqlite dialect
(`async_creator` hands it these connections), so SQL, pragmas and tests are unchanged.

What this trades: a statement (and a commit, with its fsync) blocks the event loop while it
runs. Writers in this process queue on `Database`'s write lock before they begin, so they
never wait on SQLite's lock for each other; only another process writing the same file (a CLI
command) can make a statement wait, for as long as that process's transaction lasts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import util
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.db.direct import is_direct, run_direct


class InlineCursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        if parameters is None:
            self._cursor.execute(sql)
        else:
            self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> InlineCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def __aiter__(self) -> AsyncIterator[Any]:
        for row in self._cursor:
            yield row


class _RunNow:
    """Stands in for aiosqlite's request queue, which the dialect uses to set isolation_level:
    the function runs at once and settles the future."""

    def put_nowait(self, item: tuple[Any, Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:
            future.set_exception(exc)


class InlineConnection:
    """The part of `aiosqlite.Connection` that SQLAlchemy's aiosqlite dialect uses."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        self._connection: sqlite3.Connection | None = connection
        self._tx = _RunNow()

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor())

    def begin(self, statement: str) -> None:
        """Start a transaction with `statement` (BEGIN or BEGIN IMMEDIATE) straight on the
        sqlite3 connection: every unit of work begins one, and SQLAlchemy's execution
        machinery costs far more than SQLite does for it."""
        self._conn.execute(statement)

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        return await self.cursor().execute(sql, parameters)

    async def commit(self) -> None:
        # Inline too, although it waits on the disk (one fsync of the WAL, ~0.4 ms here): the
        # committing writer still holds the write lock, and handed to a thread it got the loop
        # back only after whatever else was running (a delivery batch's encryption, a webhook
        # pass) yielded, so every other writer queued behind a few idle milliseconds. Measured
        # on `bench accept --quick`: the send's turn 9.5 -> 4.5 ms, time queued for the lock
        # 325 s -> 0.05 s over 646 sends. The price: a slow disk stalls the loop for its fsync.
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()


def inline_connector(url: str, timeout: float) -> Callable[[], Any]:
    """The `async_creator` for an aiosqlite URL: connections that run on the caller's thread
    (any thread: engines are built in one thread and used by a server thread in tests)."""
    database = make_url(url).database or ""

    async def connect() -> InlineConnection:
        return InlineConnection(sqlite3.connect(database, timeout=timeout, check_same_thread=False))

    return connect


_BUFFERED = util.immutabledict({"prebuffer_rows": True})


class InlineSession(AsyncSession):
    """An `AsyncSession` whose proxied `Session` runs on a synchronous SQLite engine
    (`db.engine.sqlite_statement_engine`): the calls the services make are run straight on
    it, where `AsyncSession` would spawn a greenlet per call. Results are buffered, as
    `AsyncSession.execute` buffers them. Any other call goes through `AsyncSession`'s own
    greenlet, which never has to switch on a synchronous engine."""

    async def execute(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        if not kw and is_direct(statement):
            result = run_direct(self.sync_session, statement, params)
            if result is not None:
                return result
        kw["execution_options"] = _buffered(kw.get("execution_options"))
        return self.sync_session.execute(statement, params, **kw)

    async def scalar(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        if not kw and is_direct(statement):
            result = run_direct(self.sync_session, statement, params)
            if result is not None:
                return result.scalar()
        kw["execution_options"] = _buffered(kw.get("execution_options"))
        return self.sync_session.scalar(statement, params, **kw)

    async def scalars(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        return (await self.execute(statement, params, **kw)).scalars()

    async def get(self, *args: Any, **kw: Any) -> Any:
        return self.sync_session.get(*args, **kw)

    async def flush(self, objects: Any = None) -> None:
        self.sync_session.flush(objects)

    async def commit(self) -> None:
        self.sync_session.commit()

    async def rollback(self) -> None:
        self.sync_session.rollback()

    async def close(self) -> None:
        self.sync_session.close()

    async def __aexit__(self, *exc: object) -> None:
        # `AsyncSession` closes in a shielded task of its own; here closing cannot suspend, so
        # a cancellation cannot interrupt it. `Database` yields to the loop after each unit.
        self.sync_session.close()


def _buffered(options: Any) -> Any:
    return util.immutabledict(options).union(_BUFFERED) if options else _BUFFERED
