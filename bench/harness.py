"""What every scenario shares: processes on free ports, a fresh store, provisioning through the
same code paths an operator uses, workers in separate processes, and the report.

Every server and every load generator is its own process, so a load generator never shares a
GIL with what it measures. Figures that count are ratios to a baseline measured in the same run,
because the machine is shared and absolute numbers move by ±15% between runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
RESULTS = Path(os.environ.get("TIDINGS_BENCH_RESULTS", ROOT / "bench" / "results"))
PG_ADMIN = os.environ.get("TIDINGS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TIDINGS_BENCH_REDIS", "redis://127.0.0.1:6379/0")
BUSINESS_PHONE = "+15550109999"
VERIFY_TOKEN = "bench-verify"
console = Console()


def customer_phone(n: int) -> str:
    return f"+4915112{n:06d}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Children import our source tree (not the editable install) and the bench package."""
    env = dict(os.environ)
    paths = [str(ROOT / "src"), str(ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra or {})
    return env


# -- measurements ----------------------------------------------------------------------------


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    """p50, p99 and max of latencies given in seconds, in milliseconds."""
    if not seconds:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "count": 0}
    ordered = sorted(seconds)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"p50": at(0.50), "p99": at(0.99), "max": ordered[-1] * 1000, "count": len(ordered)}


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


# -- processes -------------------------------------------------------------------------------


@dataclass
class Service:
    """A server process listening on `url`."""

    name: str
    url: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_until_up(service: Service, path: str = "/healthz", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"{service.name} exited with {service.process.returncode}")
        try:
            httpx.get(service.url + path, timeout=2).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    service.stop()
    raise RuntimeError(f"{service.name} did not start within {timeout:.0f} s")


def run_worker(module: str, spec: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
    """Run `python -m bench.<module>` with `spec` and return the JSON it writes."""
    worker = start_worker(module, spec)
    return worker.result(timeout)


@dataclass
class Worker:
    """A worker process: reads its spec from a file, writes its result and status files."""

    process: subprocess.Popen[bytes]
    folder: Path

    @property
    def status_path(self) -> Path:
        return self.folder / "status.json"

    def status(self) -> dict[str, Any]:
        try:
            loaded: dict[str, Any] = json.loads(self.status_path.read_text())
            return loaded
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def wait_status(self, predicate: Any, timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if predicate(status):
                return status
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early ({what}): {self.process.returncode}")
            time.sleep(0.05)
        raise RuntimeError(f"timed out waiting for {what}: {self.status()}")

    def stop(self) -> None:
        (self.folder / "stop").touch()

    def result(self, timeout: float = 900) -> dict[str, Any]:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        if code != 0:
            raise RuntimeError(f"worker failed with exit code {code}")
        loaded: dict[str, Any] = json.loads((self.folder / "result.json").read_text())
        shutil.rmtree(self.folder, ignore_errors=True)
        return loaded


def start_worker(module: str, spec: dict[str, Any]) -> Worker:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-{module}-"))
    (folder / "spec.json").write_text(json.dumps(spec))
    process = subprocess.Popen(
        [sys.executable, "-m", f"bench.{module}", str(folder)], env=child_env(), cwd=ROOT
    )
    return Worker(process, folder)


def worker_folder() -> Path:
    """Inside a worker: its folder (argv[1])."""
    return Path(sys.argv[1])


def worker_spec() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((worker_folder() / "spec.json").read_text())
    return loaded


def write_status(status: dict[str, Any]) -> None:
    folder = worker_folder()
    temporary = folder / "status.tmp"
    temporary.write_text(json.dumps(status))
    temporary.replace(folder / "status.json")


def write_result(result: dict[str, Any]) -> None:
    (worker_folder() / "result.json").write_text(json.dumps(result))


def stop_requested() -> bool:
    return (worker_folder() / "stop").exists()


# -- the store and the stack ------------------------------------------------------------------


@dataclass
class Store:
    """Where both the server under test and the baseline keep their rows."""

    kind: str  # "sqlite" or "postgresql"
    folder: Path
    pg_name: str = ""

    @property
    def tidings_url(self) -> str:
        if self.kind == "sqlite":
            return ""  # the embedded default: tidings.db in the data folder
        base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        return f"{base}/{self.pg_name}"

    @property
    def baseline_url(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite+aiosqlite:///{self.folder / 'baseline.db'}"
        return self.tidings_url

    def env(self) -> dict[str, str]:
        return bus_env(self.kind)

    def create(self) -> None:
        if self.kind == "postgresql":
            self.pg_name = f"tidings_bench_{uuid.uuid4().hex[:10]}"
            asyncio.run(pg_admin(f'CREATE DATABASE "{self.pg_name}"'))

    def drop(self) -> None:
        if self.kind == "postgresql" and self.pg_name:
            asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)'))


@contextmanager
def scratch_database(store: str, prefix: str) -> Iterator[tuple[Path, str]]:
    """A migrated, throwaway database for an in-process microbenchmark: (data folder, URL).
    SQLite in a temporary data folder, or a fresh PostgreSQL database dropped afterwards."""
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    data = folder / "data"
    data.mkdir()
    name = ""
    try:
        if store == "sqlite":
            url = f"sqlite+aiosqlite:///{data / 'tidings.db'}"
        else:
            name = f"{prefix.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
            asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
            base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
            url = f"{base}/{name}"
        # Imported here: the load generators import this module and need none of the server.
        from tidings.db.migrate import upgrade

        upgrade(url)
        yield data, url
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if name:
            asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def pg_admin(sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(PG_ADMIN)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@dataclass
class Business:
    waba_id: str
    phone_number_id: str
    access_token: str
    phone: str

    @property
    def messages_path(self) -> str:
        return f"/v23.0/{self.phone_number_id}/messages"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


# The server runs as an operator would run it for a load test: the number's throughput, the
# per-customer pair rate (one message every 6 s after a burst of 45) and the API device's
# one-time key claims (120 a minute) lifted out of the way, because the scenarios measure the
# server rather than a policy's ceiling: they send hundreds of messages to each customer and
# start sessions with hundreds of customers at once, and on a quiet machine the accept run
# goes past Meta's top tier of 1,000 messages/s per number (37% of its sends were refused
# with 130429 when that was the bench's throughput). Every send is still evaluated by the
# policy.
BENCH_SETTINGS = {
    "TIDINGS_MESSAGING_LIMITS__THROUGHPUT_PER_SECOND": "1000000",
    "TIDINGS_MESSAGING_LIMITS__HIGH_THROUGHPUT_PER_SECOND": "1000000",
    "TIDINGS_MESSAGING_LIMITS__PAIR_INTERVAL_SECONDS": "0.001",
    "TIDINGS_MESSAGING_LIMITS__PAIR_BURST": "1000000",
    "TIDINGS_LIMITS__KEY_CLAIMS_PER_MINUTE": "1000000",
}


def bus_env(store: str) -> dict[str, str]:
    """The bus a node runs with on `store`: in process on SQLite, Redis beside PostgreSQL."""
    if store == "sqlite":
        return {}
    return {"TIDINGS_BUS__KIND": "redis", "TIDINGS_BUS__REDIS_URL": REDIS_URL}


def use_bench_settings(store: str) -> None:
    """For a micro-benchmark that runs the app in this process: the scenarios' limits and the
    store's bus, in this process's environment (the settings read it)."""
    os.environ.update({**BENCH_SETTINGS, **bus_env(store)})


# Set by `python -m bench --profile`: py-spy samples the Tidings server of each scenario.
PROFILE: dict[str, str] = {}


@dataclass
class Stack:
    """A fresh data folder and store, and every process started for one scenario."""

    store: Store
    services: list[Service] = field(default_factory=list)
    profilers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.store.folder / "data"

    def tidings(self, *args: str) -> str:
        """Run a `tidings` command against this stack's data folder and store."""
        command = [sys.executable, "-m", "tidings.cli.main", *args, "--data", str(self.data)]
        if self.store.tidings_url:
            command += ["--db", self.store.tidings_url]
        return subprocess.check_output(command, text=True, env=child_env(self.store.env()))

    def start_tidings(self) -> Service:
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "tidings.cli.main",
            "serve",
            "--data",
            str(self.data),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
        if self.store.tidings_url:
            command += ["--db", self.store.tidings_url]
        service = self._start("tidings", command, port, BENCH_SETTINGS)
        if PROFILE:
            self.profile(service)
        return service

    def profile(self, service: Service) -> None:
        """Sample the server with py-spy until it stops; collapsed stacks go to results/."""
        RESULTS.mkdir(parents=True, exist_ok=True)
        output = RESULTS / f"profile-{PROFILE['scenario']}.txt"
        spy = Path(sys.executable).with_name("py-spy")
        self.profilers.append(
            subprocess.Popen(
                [
                    str(spy),
                    "record",
                    "--pid",
                    str(service.pid),
                    "--format",
                    "raw",
                    "--rate",
                    "100",
                    "--idle",
                    "-o",
                    str(output),
                ],
                stdout=subprocess.DEVNULL,
            )
        )

    def start_baseline(self) -> Service:
        port = free_port()
        command = [sys.executable, "-m", "bench.bare_asgi", str(port), self.store.baseline_url]
        return self._start("baseline", command, port)

    def start_receiver(self) -> Service:
        port = free_port()
        command = [sys.executable, "-m", "bench.receiver", str(port), VERIFY_TOKEN]
        return self._start("receiver", command, port)

    def _start(
        self, name: str, command: list[str], port: int, extra: dict[str, str] | None = None
    ) -> Service:
        env = child_env({**self.store.env(), **(extra or {})})
        process = subprocess.Popen(command, env=env, cwd=ROOT)
        service = Service(name, f"http://127.0.0.1:{port}", process)
        self.services.append(service)
        wait_until_up(service)
        return service

    def create_business(self) -> Business:
        made = json.loads(
            self.tidings(
                "business", "create", "--name", "Bench", "--phone", BUSINESS_PHONE, "--json"
            )
        )
        return Business(
            made["waba_id"], made["phone_number_id"], made["access_token"], made["phone"]
        )

    def route_webhooks(self, business: Business, receiver: Service) -> None:
        self.tidings(
            "business",
            "webhook",
            "--phone-number-id",
            business.phone_number_id,
            "--url",
            f"{receiver.url}/hook",
            "--verify-token",
            VERIFY_TOKEN,
        )

    def invites(self, phones: list[str]) -> dict[str, str]:
        """One-time codes, issued as `tidings admin invite` does, from one runtime for speed."""

        async def issue(runtime: Any) -> dict[str, str]:
            codes = {}
            for phone in phones:
                async with runtime.database.unit_of_work() as uow:
                    codes[phone] = (await runtime.accounts.invite(uow, phone)).code
            return codes

        return self._with_runtime(issue)

    def outbound_statuses(self, sample: int = 20) -> dict[str, Any]:
        """The server's outbound messages by status, and a sample of those not read (their
        wamid, customer and status): where a run's missing `read` webhooks stopped."""
        from sqlalchemy import text

        async def read(runtime: Any) -> dict[str, Any]:
            async with runtime.database.read_only() as uow:
                counts = await uow.session.execute(
                    text(
                        "SELECT status, count(*) FROM business_messages"
                        " WHERE direction = 'out' GROUP BY status"
                    )
                )
                unread = await uow.session.execute(
                    text(
                        "SELECT wamid, customer, status FROM business_messages"
                        " WHERE direction = 'out' AND status != 'read' ORDER BY id LIMIT :n"
                    ),
                    {"n": sample},
                )
                return {
                    "by_status": {status: int(n) for status, n in counts},
                    "unread_sample": [list(row) for row in unread],
                }

        return self._with_runtime(read)

    def _with_runtime(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """`work` run on a runtime of this stack's settings (its own, beside the server's),
        closed after."""
        from tidings.cli.server import settings_for
        from tidings.runtime import build_runtime

        settings = settings_for(self.data, self.store.tidings_url or None)

        async def run() -> T:
            runtime = build_runtime(settings)
            try:
                return await work(runtime)
            finally:
                await runtime.close()

        return asyncio.run(run())


@contextmanager
def stack(store_kind: str) -> Iterator[Stack]:
    folder = Path(tempfile.mkdtemp(prefix="tidings-bench-"))
    store = Store(store_kind, folder)
    store.create()
    made = Stack(store)
    made.data.mkdir(parents=True)
    try:
        yield made
    finally:
        for profiler in made.profilers:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=60)
        for service in reversed(made.services):
            service.stop()
        store.drop()
        shutil.rmtree(folder, ignore_errors=True)


def receiver_stats(receiver: Service) -> dict[str, Any]:
    loaded: dict[str, Any] = httpx.get(f"{receiver.url}/stats", timeout=10).json()
    return loaded


def wait_for_receiver(receiver: Service, predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate(receiver_stats(receiver)):
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}: {receiver_stats(receiver)}")


# -- customers -------------------------------------------------------------------------------


def setup_customers(
    stack_: Stack,
    server: Service,
    business: Business,
    count: int,
    *,
    companions: bool,
    receiver: Service,
    first: int = 0,
) -> list[dict[str, Any]]:
    """Register `count` customers (with a linked companion each if asked) in a worker process;
    each sends the business one message, which opens its customer service window."""
    phones = [customer_phone(first + n) for n in range(count)]
    codes = stack_.invites(phones)
    before = receiver_stats(receiver)["messages"]
    profiles = stack_.store.folder / "profiles"
    result = run_worker(
        "devices",
        {
            "mode": "setup",
            "server": server.url,
            "codes": codes,
            "companions": companions,
            "business": business.phone,
            "profiles": str(profiles),
        },
    )
    wait_for_receiver(
        receiver,
        lambda s: s["messages"] >= before + count,
        timeout=120 + count,
        what="the window-opening messages",
    )
    customers: list[dict[str, Any]] = result["customers"]
    return customers


# -- the report ------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    goal: str
    value: str
    held: bool


@dataclass
class Report:
    scenario: str
    title: str
    command: str
    store: str
    size: str  # tiny (the smoke test), quick or full
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # metric, ours, baseline
    targets: list[Target] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def row(self, metric: str, ours: str, baseline: str = "") -> None:
        self.rows.append((metric, ours, baseline))

    def target(self, name: str, goal: str, value: str, held: bool) -> None:
        self.targets.append(Target(name, goal, value, held))

    def emit(self) -> Path:
        table = Table(title=f"{self.scenario}: {self.title} ({self.store})")
        table.add_column("metric")
        table.add_column("tidings", justify="right")
        table.add_column("baseline (same run)", justify="right")
        for metric, ours, baseline in self.rows:
            table.add_row(metric, ours, baseline)
        console.print(table)
        for target in self.targets:
            mark = "[green]held[/green]" if target.held else "[red]missed[/red]"
            console.print(f"  target {target.name}: {target.goal}; measured {target.value}: {mark}")
        RESULTS.mkdir(parents=True, exist_ok=True)
        suffix = "" if self.store == "sqlite" else f"-{self.store}"
        suffix += "" if self.size == "full" else f"-{self.size}"
        path = RESULTS / f"{self.scenario}{suffix}.json"
        document = asdict(self)
        document["rows"] = [{"metric": m, "tidings": o, "baseline": b} for m, o, b in self.rows]
        document["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        document["cpus"] = os.cpu_count()
        path.write_text(json.dumps(document, indent=2) + "\n")
        console.print(f"  written to {path}")
        return path
