"""Shared fixtures: every database test runs on SQLite and again on PostgreSQL.

PostgreSQL is the service on 127.0.0.1:5432 (trust auth); set TIDINGS_TEST_PG to another admin
URL to use a different one. Each test session creates its own database and drops it afterwards.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import uvicorn

from tidings.app import create_app
from tidings.config import Settings, load_settings
from tidings.db.migrate import upgrade
from tidings.kit.clock import FrozenClock
from tidings.runtime import Runtime, build_runtime
from tidings.schema import metadata

PG_ADMIN = os.environ.get("TIDINGS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ("sqlite", "postgresql")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """How many workers `-n auto` starts: one more than the machine has cores (at most 8).
    The tests spend much of their time waiting on PostgreSQL, sockets and subprocesses, so a
    2-core machine runs the suite fastest with 3 or 4 workers (measured: 2 workers 335 s, 3
    256 s, 4 253 s, 6 286 s); the cap keeps the workers' connection pools well under
    PostgreSQL's default max_connections. PYTEST_XDIST_AUTO_NUM_WORKERS still decides when
    set (xdist's own rule reads it)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min((cores or 1) + 1, 8)


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> Iterator[None]:
    """The suite runs on several pytest-xdist workers (`-n auto --dist loadgroup`, see
    pyproject.toml), each with its own databases but all with the one Redis server. The
    tests marked `redis` go to one worker, one after another: the nodes they start name
    their bus topics and rate-limit keys after database ids (`mailbox.3`, `key-claim:1`),
    which are alike on every worker."""
    for item in items:
        if item.get_closest_marker("redis") is not None:
            item.add_marker(pytest.mark.xdist_group("redis"))
    yield  # the other implementations, xdist's among them
    if getattr(config.option, "loadgroup", False):  # an xdist worker under --dist loadgroup
        for item in items:
            _keep_xdist_group(item)


def _keep_xdist_group(item: pytest.Item) -> None:
    """xdist tells its scheduler an item's group with a suffix on the node id
    (`test_x[sqlite]@redis`). pytest-xdist 3.8 writes it to `item._nodeid`, which pytest 9.2
    no longer reads (its ids are structured), so the groups are silently lost
    (pytest-dev/pytest-xdist#1386). Add the suffix where it is missing, and stop the run if
    it cannot be added: a group that is not kept would let Redis tests run side by side."""
    names = sorted(
        {
            str(m.args[0] if m.args else m.kwargs.get("name", "default"))
            for m in item.iter_markers("xdist_group")
        }
    )
    if not names:
        return
    suffix = "@" + "_".join(names)
    if item.nodeid.endswith(suffix):
        return  # xdist did it
    grouped = item.nodeid + suffix
    if hasattr(item, "_id"):  # pytest >= 9.2
        item._id = type(item._id).parse(grouped)
    else:
        item._nodeid = grouped
    if item.nodeid != grouped:
        raise pytest.UsageError(f"cannot put {item.nodeid} in its xdist group {names}")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating per test would be slow)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    name = f"tidings_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(PG_ADMIN)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except OSError as exc:  # pragma: no cover - CI starts PostgreSQL before the suite
        raise RuntimeError(f"PostgreSQL is not reachable at {PG_ADMIN}: {exc}") from exc
    base = PG_ADMIN.rsplit("/", 1)[0]
    url = f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    upgrade(url)
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _truncate_pg(url: str) -> None:
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)

    async def run() -> None:
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await connection.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        finally:
            await connection.close()

    asyncio.run(run())


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "data" / "tidings.db"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(template, target)
        return f"sqlite+aiosqlite:///{target}"
    url: str = request.getfixturevalue("pg_database")
    _truncate_pg(url)
    return url


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(tmp_path / "data", database={"url": database_url})


@dataclass
class RunningServer:
    url: str
    runtime: Runtime
    settings: Settings
    clock: FrozenClock

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")


class ServerThread:
    """A real uvicorn server on a loopback socket, in a thread with its own event loop.

    The socket is bound and listening before the thread starts, so clients can connect at once
    (the kernel queues them) and no test has to wait for start-up.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(runtime),
            log_level="warning",
            ws_ping_interval=runtime.settings.server.websocket_heartbeat_seconds,
            ws_ping_timeout=runtime.settings.server.websocket_heartbeat_seconds,
            ws=runtime.settings.server.websocket_implementation,  # as `tidings serve` runs
            ws_per_message_deflate=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


@contextmanager
def serving(settings: Settings, clock: FrozenClock) -> Iterator[RunningServer]:
    """The whole server on its own thread, for as long as the block runs."""
    runtime = build_runtime(settings, clock=clock)
    thread = ServerThread(runtime)
    thread.start()
    try:
        yield RunningServer(f"http://127.0.0.1:{thread.port}", runtime, settings, clock)
    finally:
        thread.stop()


@pytest.fixture
def server(settings: Settings, clock: FrozenClock) -> Iterator[RunningServer]:
    with serving(settings, clock) as running:
        yield running


@pytest.fixture
async def local(settings: Settings, clock: FrozenClock) -> AsyncIterator[Runtime]:
    """A runtime on the test's own loop (a served runtime lives on another thread's loop)."""
    runtime = build_runtime(settings, clock=clock)
    yield runtime
    await runtime.close()


def issue_invite(settings: Settings, phone: str, clock: FrozenClock | None = None) -> str:
    """An operator invite issued through the service, as `tidings admin invite` does, from a
    runtime of its own (like another process). Callable from inside or outside a test loop."""

    async def issue() -> str:
        runtime = build_runtime(settings, clock=clock)
        try:
            async with runtime.database.unit_of_work() as uow:
                return (await runtime.accounts.invite(uow, phone)).code
        finally:
            await runtime.close()

    result: str = run_in_thread(issue)
    return result


def invite_code(server: RunningServer, phone: str) -> str:
    return issue_invite(server.settings, phone, server.clock)


def run_in_thread(factory):  # type: ignore[no-untyped-def]
    """Run a coroutine on its own loop in a thread (a separate runtime, like another process);
    its exception, if any, is raised here."""
    result: list[object] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(factory()))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


@pytest.fixture
def invite(server: RunningServer):  # type: ignore[no-untyped-def]
    return lambda phone: invite_code(server, phone)


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The webhook poster's tests run on asyncio's loop and on uvloop (what `tidings serve`
    runs on); every other test on asyncio's loop only. (Here, not in a conftest.py of their
    own folder: the tests import this module as `conftest`, and a second one shadows it.)"""
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    if item.path.name == "test_webhooks_poster.py":
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvicorn[standard] brings it where it builds
            return factories
        factories["uvloop"] = uvloop.new_event_loop
    return factories
