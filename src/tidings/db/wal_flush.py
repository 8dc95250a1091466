"""Group commit for SQLite: one fsync of the write-ahead log per round of the event loop, run
in a thread of its own.

With `synchronous=FULL` every COMMIT fsyncs the log, on the event loop's thread (see
`sqlite_inline`), and nothing else runs meanwhile: under load an fsync took 0.5-1 ms here,
and a message costs several units of work. Units of work now commit with
`synchronous=NORMAL`: the commit is in the log, where the operating system holds it (a process
that crashes loses nothing), but not yet on the disk. `WalFlush.durable()` then makes the unit
wait, outside the writer's turn, until an fsync of the log that began after its commit has
returned, so nothing is answered or announced before it is on disk, as before.

The fsync starts at the end of the round in which the first unit waits, and every unit that
committed before it starts shares it; units that commit while it runs share the next, which
starts when it returns. It runs in a thread, so the loop serves requests while the disk
syncs (the fsync blocked the loop for about a tenth of its busy time in the e2e profile).
A thread's result reaches the loop only once the thread holds the GIL again, which a busy
loop gives up every `sys.getswitchinterval()` (5 ms by default): `tidings serve` shortens
that interval (`server.switch_interval_ms`), or every commit would wait that long under load,
as an earlier attempt at a threaded fsync did.

What it trades: until the fsync returns, a committed unit's rows are visible to other readers
before they are on disk. A reader that answers from them in that window answers from rows that
an operating-system crash or power loss (not a process crash) could still take back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


class WalFlush:
    def __init__(self, wal: Path) -> None:
        self._wal = wal
        self._waiting: list[asyncio.Future[None]] = []  # committed; for the next fsync
        self._scheduled = False  # the next fsync starts at the end of this round
        self._running = False  # an fsync is under way
        self._thread: concurrent.futures.ThreadPoolExecutor | None = None

    async def durable(self) -> None:
        """Return once what the caller committed is on disk."""
        loop = asyncio.get_running_loop()
        # A future per unit: a unit cancelled while it waits cancels only its own.
        mine: asyncio.Future[None] = loop.create_future()
        self._waiting.append(mine)
        if not (self._scheduled or self._running):
            self._scheduled = True
            loop.call_soon(self._start, loop)
        await mine

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        waiting, self._waiting = self._waiting, []  # later commits: the next fsync
        if self._thread is None:
            self._thread = concurrent.futures.ThreadPoolExecutor(1, "tidings-wal-fsync")
        self._running = True
        synced = loop.run_in_executor(self._thread, fsync_file, self._wal)
        synced.add_done_callback(lambda done: self._finished(loop, waiting, done))

    def _finished(
        self,
        loop: asyncio.AbstractEventLoop,
        waiting: list[asyncio.Future[None]],
        synced: asyncio.Future[None],
    ) -> None:
        self._running = False
        failure = synced.exception()
        if failure is not None:
            log.error("fsync of the write-ahead log failed: %s", failure)
        for waiter in waiting:
            if waiter.done():
                continue
            if failure is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(failure)
        if self._waiting:  # committed while this fsync ran
            self._start(loop)


def fsync_file(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        # No log: a checkpoint moved everything into the database file, and synced it.
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_CHANGES_AT_BEGIN = "tidings.changes_at_begin"


def commit_without_fsync(engine: Engine) -> None:
    """Every connection of `engine` commits with `synchronous=NORMAL` (its fsync is
    `WalFlush`'s). Registered after the engine's own pragmas, so it overrides FULL; and every
    transaction notes how many rows its connection had changed when it began, for
    `wrote_anything`."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.info[_CHANGES_AT_BEGIN] = connection.connection.driver_connection.total_changes


def wrote_anything(session: Session) -> bool:
    """Whether `session`'s transaction inserted, updated or deleted a row: one that did not
    (it only read, or ran nothing) wrote nothing to the log, and has nothing to wait for.
    Schema changes are not counted; they belong to the migrations, which sync themselves."""
    if not session.in_transaction():
        return False
    connection = session.connection()
    driver: Any = connection.connection.driver_connection
    return bool(driver.total_changes != connection.info.get(_CHANGES_AT_BEGIN))


def wal_of(database: str | None) -> Path | None:
    """The write-ahead log of a SQLite database file (none for an in-memory database)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database + "-wal")
