"""Plain websocket clients in a process of their own (no decryption: the frames are counted).

Modes (FOLDER/spec.json "mode"):
- hold: open `count` connections to `url` and keep them idle; note when each one gets its first
  frame (a push to everyone) and report those wall-clock times.
- latency: connections to the bare baseline's `/ws`, which pushes each accepted body; time each
  benchmark body from the send time stamped in its text (the baseline of the e2e scenario).

With `profile`, the connections use that device's token, after its mailbox is drained (so the
first frame each one gets is the push being timed). With `tokens`, connection n uses device
token n (modulo their number): one device per connection, as real clients connect.

    python -m bench.sockets FOLDER
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import uvloop
from websockets.asyncio.client import ClientConnection, connect

from bench.harness import stop_requested, worker_spec, write_result, write_status
from tidings.sdk import DeviceClient

OPEN_AT_ONCE = 50


async def device_headers(profile: str) -> dict[str, str]:
    client = await DeviceClient.open(profile)
    try:
        await client.sync()
        return client.api.auth_headers()
    finally:
        await client.close()


class Clients:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.sockets: list[ClientConnection] = []
        self.first_frames: list[float] = []
        self.latencies: list[float] = []
        self.readers: list[asyncio.Task[None]] = []

    async def open_all(self, headers: list[dict[str, str]]) -> None:
        gate = asyncio.Semaphore(OPEN_AT_ONCE)

        async def one(n: int) -> None:
            async with gate:
                socket = await connect(
                    self.spec["url"],
                    additional_headers=headers[n % len(headers)],
                    open_timeout=120,
                    max_queue=None,
                )
                self.sockets.append(socket)
                self.readers.append(asyncio.create_task(self.read(socket)))

        await asyncio.gather(*(one(n) for n in range(int(self.spec["count"]))))

    async def read(self, socket: ClientConnection) -> None:
        first = True
        with contextlib.suppress(Exception):
            async for frame in socket:
                now = time.time()
                if first:
                    self.first_frames.append(now)
                    first = False
                if self.spec["mode"] == "latency":
                    words = json.loads(frame)["text"]["body"].split()
                    if words[0] == "bench":
                        self.latencies.append(now - float(words[2]))


async def main() -> None:
    spec = worker_spec()
    if spec.get("tokens"):
        headers = [{"Authorization": f"Bearer {token}"} for token in spec["tokens"]]
    else:
        headers = [await device_headers(spec["profile"]) if spec.get("profile") else {}]
    clients = Clients(spec)
    await clients.open_all(headers)
    while not stop_requested():
        write_status(
            {
                "connected": len(clients.sockets),
                "first_frames": len(clients.first_frames),
                "received": len(clients.latencies),
            }
        )
        await asyncio.sleep(0.02)
    write_result({"first_frames": clients.first_frames, "latencies": clients.latencies})
    for reader in clients.readers:
        reader.cancel()
    await asyncio.gather(*(s.close() for s in clients.sockets), return_exceptions=True)


if __name__ == "__main__":
    uvloop.run(main())
