"""A small HTTP/1.1 load generator over raw keep-alive sockets, run as its own process.

httpx tops out near 500 requests/s on this machine, below what the servers do, so requests are
written as prepared bytes and answers read by Content-Length. Two modes:

- closed loop: `concurrency` connections each send the next request when the last is answered;
- open loop: requests are due at a fixed `rate`; latency counts from when a request was due, so
  a server that falls behind is charged for the queue it causes (no coordinated omission).

Bodies may carry `__SEQ__` (a sequence number) and `__TS__` (wall-clock send time), which the
receiving device uses to time delivery end to end.

    python -m bench.loadgen FOLDER     (FOLDER/spec.json in, FOLDER/result.json out)
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import uvloop

from bench.harness import percentiles_ms, worker_spec, write_result, write_status


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
        header = await self.reader.readuntil(b"\r\n\r\n")
        status = int(header[9:12])
        length = 0
        for line in header.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        answer = await self.reader.readexactly(length) if length else b""
        return status, answer


class Run:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        headers = {"Host": f"{spec['host']}:{spec['port']}", "Content-Type": "application/json"}
        headers.update(spec.get("headers", {}))
        lines = [f"POST {spec['path']} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
        self.head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode()
        self.bodies = [json.dumps(body).encode() for body in spec["bodies"]]
        self.latencies: list[float] = []
        self.statuses: dict[str, int] = {}
        self.samples: list[str] = []
        self.done = 0
        self.ok = 0  # answered 2xx: accepted, where `done` also counts refusals
        self.skipped = 0
        self.seq = 0

    def body(self) -> bytes:
        template = self.bodies[self.seq % len(self.bodies)]
        self.seq += 1
        return template.replace(b"__SEQ__", str(self.seq).encode()).replace(
            b"__TS__", f"{time.time():.6f}".encode()
        )

    async def one(self, connection: Connection, due: float) -> None:
        status, answer = await connection.request(self.head, self.body())
        self.latencies.append(time.perf_counter() - due)
        self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
        if status >= 300 and len(self.samples) < 5:
            self.samples.append(answer[:300].decode(errors="replace"))
        self.done += 1
        self.ok += 200 <= status < 300

    async def closed_loop(self, total: int, concurrency: int) -> None:
        remaining = [total]

        async def client() -> None:
            connection = Connection(self.spec["host"], self.spec["port"])
            while remaining[0] > 0:
                remaining[0] -= 1
                await self.one(connection, time.perf_counter())

        await asyncio.gather(*(client() for _ in range(concurrency)))

    async def open_loop(self, rate: float, duration: float, concurrency: int) -> None:
        idle: asyncio.Queue[Connection] = asyncio.Queue()
        for _ in range(concurrency):
            idle.put_nowait(Connection(self.spec["host"], self.spec["port"]))
        start = time.perf_counter()
        total = int(rate * duration)
        # A server that falls far behind does not get the rest: requests still unsent this long
        # after the run should have ended are skipped (and counted), so a run ends in bounded time.
        give_up = start + duration + float(self.spec.get("grace", 10.0))
        pending: set[asyncio.Task[None]] = set()

        async def send(due: float) -> None:
            connection = await idle.get()
            try:
                if time.perf_counter() > give_up:
                    self.skipped += 1
                    return
                await self.one(connection, due)
            finally:
                idle.put_nowait(connection)

        for n in range(total):
            due = start + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(send(due))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)

    async def progress(self, begin: float) -> None:
        """The harness reads how many requests have been answered, once a tenth of a second."""
        while True:
            elapsed = time.perf_counter() - begin
            write_status({"done": self.done, "ok": self.ok, "elapsed": elapsed})
            await asyncio.sleep(0.1)


async def main() -> None:
    spec = worker_spec()
    run = Run(spec)
    warmup = int(spec.get("warmup", 0))
    if warmup:
        await run.closed_loop(warmup, int(spec["concurrency"]))
        run.latencies.clear()
        run.statuses.clear()
        run.done = run.ok = 0
    begin = time.perf_counter()
    reporter = asyncio.create_task(run.progress(begin))
    if spec.get("rate"):
        await run.open_loop(float(spec["rate"]), float(spec["duration"]), int(spec["concurrency"]))
    else:
        await run.closed_loop(int(spec["total"]), int(spec["concurrency"]))
    elapsed = time.perf_counter() - begin
    reporter.cancel()
    write_status({"done": run.done, "ok": run.ok, "elapsed": elapsed, "finished": True})
    ok = sum(n for status, n in run.statuses.items() if status.startswith("2"))
    write_result(
        {
            "requests": run.done,
            "skipped": run.skipped,
            "ok": ok,
            "statuses": run.statuses,
            "error_samples": run.samples,
            "elapsed": elapsed,
            "per_second": ok / elapsed if elapsed else 0.0,
            "latency_ms": percentiles_ms(run.latencies),
        }
    )


if __name__ == "__main__":
    uvloop.run(main())
