"""SQLite group commit: units of work commit without an fsync, then wait for one fsync of the
write-ahead log, run in a thread, shared by every unit that committed before it started."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from tidings.db.engine import make_engine
from tidings.db.uow import Database


class FsyncLog:
    """Records every `os.fsync` of the write-ahead log; can be told to fail them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, wal: Path) -> None:
        self.calls = 0
        self.fail = False
        # When set, an fsync of the log holds until `release` is set (`started` tells when).
        self.hold: threading.Event | None = None
        self.started = threading.Event()
        real = os.fsync

        def fsync(fd: int) -> None:
            if os.readlink(f"/proc/self/fd/{fd}") == str(wal):
                self.calls += 1
                self.started.set()
                if self.hold is not None:
                    self.hold.wait(timeout=30)
                if self.fail:
                    raise OSError(errno.EIO, "disk said no")
            real(fd)

        monkeypatch.setattr(os, "fsync", fsync)


async def open_database(path: Path, *, shared_flush: bool = True) -> Database:
    url = f"sqlite+aiosqlite:///{path}"
    database = Database(
        make_engine(url), make_engine(url, read_only=True), shared_flush=shared_flush
    )
    async with database.unit_of_work() as uow:
        await uow.session.execute(text("CREATE TABLE rows (id INTEGER PRIMARY KEY, n INT)"))
    return database


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    opened = await open_database(tmp_path / "group.db")
    yield opened
    await opened.dispose()


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FsyncLog:
    return FsyncLog(monkeypatch, tmp_path / "group.db-wal")


async def insert(database: Database, n: int) -> None:
    async with database.unit_of_work() as uow:
        await uow.session.execute(text("INSERT INTO rows (n) VALUES (:n)"), {"n": n})


async def count(database: Database) -> int:
    async with database.read_only() as uow:
        return int((await uow.session.execute(text("SELECT count(*) FROM rows"))).scalar_one())


async def test_a_unit_returns_only_after_the_log_is_synced(
    database: Database, fsyncs: FsyncLog
) -> None:
    seen: list[tuple[str, int]] = []
    async with database.unit_of_work() as uow:
        # The commit itself does not sync: its fsync is the shared one.
        mode = (await uow.session.execute(text("PRAGMA synchronous"))).scalar_one()
        await uow.session.execute(text("INSERT INTO rows (n) VALUES (1)"))
        seen.append(("body", fsyncs.calls))

        async def announced() -> None:
            seen.append(("after commit", fsyncs.calls))

        uow.after_commit(announced)
    seen.append(("returned", fsyncs.calls))
    assert mode == 1  # NORMAL
    assert seen == [("body", 0), ("after commit", 1), ("returned", 1)]
    assert await count(database) == 1


async def test_units_committed_in_one_round_share_one_fsync(
    database: Database, fsyncs: FsyncLog
) -> None:
    await asyncio.gather(*(insert(database, n) for n in range(20)))
    assert await count(database) == 20
    assert fsyncs.calls == 1
    # One after another, each unit needs its own.
    for n in range(3):
        await insert(database, n)
    assert fsyncs.calls == 4


async def test_a_failed_fsync_fails_every_unit_that_waited_for_it(
    database: Database, fsyncs: FsyncLog
) -> None:
    fsyncs.fail = True
    announced: list[int] = []

    async def insert_and_announce(n: int) -> None:
        async with database.unit_of_work() as uow:
            await uow.session.execute(text("INSERT INTO rows (n) VALUES (:n)"), {"n": n})

            async def announce() -> None:
                announced.append(n)

            uow.after_commit(announce)

    results = await asyncio.gather(
        *(insert_and_announce(n) for n in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, OSError) and r.errno == errno.EIO for r in results)
    assert announced == []  # nothing is announced that is not known to be on disk
    fsyncs.fail = False
    await insert(database, 9)  # the next round syncs again
    assert fsyncs.calls == 2


async def test_a_unit_cancelled_while_it_waits_does_not_hold_up_the_others(
    database: Database, fsyncs: FsyncLog
) -> None:
    impatient = asyncio.create_task(insert(database, 1))
    patient = asyncio.create_task(insert(database, 2))
    await asyncio.sleep(0)  # both have committed and wait for the round's fsync
    impatient.cancel()
    await patient
    with pytest.raises(asyncio.CancelledError):
        await impatient
    assert fsyncs.calls == 1
    assert await count(database) == 2  # cancelled after its commit: the row stays


async def test_without_shared_flush_each_commit_syncs_itself(
    tmp_path: Path, fsyncs: FsyncLog
) -> None:
    database = await open_database(tmp_path / "group.db", shared_flush=False)
    try:
        async with database.unit_of_work() as uow:
            mode = (await uow.session.execute(text("PRAGMA synchronous"))).scalar_one()
        await asyncio.gather(*(insert(database, n) for n in range(5)))
        assert mode == 2  # FULL: SQLite syncs inside COMMIT
        assert fsyncs.calls == 0  # no extra fsync of ours
        assert await count(database) == 5
    finally:
        await database.dispose()


async def test_a_unit_that_changed_no_row_waits_for_no_fsync(
    database: Database, fsyncs: FsyncLog
) -> None:
    async with database.unit_of_work() as uow:
        await uow.session.execute(text("SELECT count(*) FROM rows"))
    async with database.unit_of_work() as uow:
        await uow.session.execute(text("UPDATE rows SET n = 1 WHERE id = -1"))  # matches none
    async with database.unit_of_work():
        pass  # ran nothing
    assert fsyncs.calls == 0
    await insert(database, 1)  # a change on the same pooled connection is still synced
    assert fsyncs.calls == 1


async def test_the_loop_runs_while_the_log_syncs_and_later_commits_wait_for_the_next_fsync(
    database: Database, fsyncs: FsyncLog
) -> None:
    fsyncs.hold = threading.Event()
    first = asyncio.create_task(insert(database, 1))
    await asyncio.to_thread(fsyncs.started.wait, 30)  # the first fsync is under way
    fsyncs.started.clear()
    # The loop is free meanwhile: a read and a whole write of another unit happen.
    assert await count(database) == 1
    second = asyncio.create_task(insert(database, 2))
    third = asyncio.create_task(insert(database, 3))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not (first.done() or second.done() or third.done())
    assert fsyncs.calls == 1
    fsyncs.hold.set()  # the disk answers; the units behind it need an fsync of their own
    await asyncio.gather(first, second, third)
    assert fsyncs.calls == 2
    assert await count(database) == 3
