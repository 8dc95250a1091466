"""Customer devices for the benchmarks, driven by the SDK in a process of their own.

Modes (FOLDER/spec.json "mode"):
- setup: register customers (and link a companion to each if asked); each sends the business
  one message, which opens its customer service window.
- listen: hold every device's live connection; time each benchmark message from the send time
  stamped in its text to its plaintext here; the primary marks messages read if asked.
- send: each customer sends the business `messages` texts (the inbound scenario).

    python -m bench.devices FOLDER
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import uvloop

from bench.harness import stop_requested, worker_spec, write_result, write_status
from tidings.sdk import DeviceClient, IncomingMessage, SecurityNotice

log = logging.getLogger("bench.devices")
SETUP_CONCURRENCY = 8


async def setup(spec: dict[str, Any]) -> None:
    server, business, folder = spec["server"], spec["business"], Path(spec["profiles"])
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def one(phone: str, code: str) -> dict[str, Any]:
        async with gate:
            home = folder / phone.lstrip("+")
            primary = await DeviceClient.register(server, phone, code, home / "primary")
            profiles = [str(home / "primary")]
            try:
                if spec["companions"]:
                    link = await primary.open_link()
                    companion, _ = await asyncio.gather(
                        DeviceClient.join(server, link.code, home / "companion", timeout=120),
                        primary.wait_for_join(link, timeout=120),
                    )
                    await companion.close()
                    profiles.append(str(home / "companion"))
                await primary.send_text(business, "hello")
            finally:
                await primary.close()
            return {"phone": phone, "profiles": profiles}

    customers = await asyncio.gather(*(one(p, c) for p, c in spec["codes"].items()))
    write_result({"customers": list(customers)})


class Listener:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.latencies: list[float] = []
        self.received = 0
        self.warm: set[str] = set()
        self.failures: list[str] = []
        self.clients: list[DeviceClient] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        for customer in self.spec["customers"]:
            for index, profile in enumerate(customer["profiles"]):
                client = await DeviceClient.open(profile)
                self.clients.append(client)
                reads = self.spec.get("reads", False) and index == 0
                self.tasks.append(asyncio.create_task(self.listen(client, reads)))
        begin = time.perf_counter()
        while not stop_requested():
            write_status(
                {"received": self.received, "warm": len(self.warm), "failures": self.failures}
            )
            await asyncio.sleep(0.05)
        write_result(
            {
                "received": self.received,
                "latencies": self.latencies,
                "failures": self.failures,
                "elapsed": time.perf_counter() - begin,
            }
        )

    async def listen(self, client: DeviceClient, reads: bool) -> None:
        unread: list[tuple[str, str]] = []
        flusher = asyncio.create_task(self.flush_reads(client, unread)) if reads else None
        try:
            async for event in client.listen():
                if isinstance(event, SecurityNotice):  # a message it could not decrypt
                    self.failures.append(f"{client.phone}/{client.device_id}: {event.message}")
                    continue
                if not isinstance(event, IncomingMessage) or not event.text:
                    continue
                words = event.text.split()
                if words[0] == "warmup":
                    self.warm.add(f"{client.phone}/{client.device_id}")
                elif words[0] == "bench":
                    self.latencies.append(time.time() - float(words[2]))
                    self.received += 1
                if reads:
                    unread.append((event.sender, event.id))
        except Exception as exc:  # counted and reported: the harness shows failures
            self.failures.append(f"{client.phone}/{client.device_id}: {exc!r}")
        finally:
            if flusher:
                flusher.cancel()

    async def flush_reads(self, client: DeviceClient, unread: list[tuple[str, str]]) -> None:
        """A person reads what arrived a moment ago: read receipts go out every 200 ms."""
        while True:
            await asyncio.sleep(0.2)
            batch, unread[:] = list(unread), []
            by_sender: dict[str, list[str]] = {}
            for sender, message_id in batch:
                by_sender.setdefault(sender, []).append(message_id)
            for sender, ids in by_sender.items():
                try:
                    await client.mark_read(sender, ids)
                except Exception as exc:
                    self.failures.append(f"read receipt: {exc!r}")


async def send(spec: dict[str, Any]) -> None:
    clients = [await DeviceClient.open(c["profiles"][0]) for c in spec["customers"]]
    messages, business = int(spec["messages"]), spec["business"]
    began_at, begin = time.time(), time.perf_counter()

    async def one(client: DeviceClient) -> None:
        for n in range(messages):
            await client.send_text(business, f"inbound {n}")

    await asyncio.gather(*(one(c) for c in clients))
    elapsed = time.perf_counter() - begin
    for client in clients:
        await client.close()
    write_result({"sent": messages * len(clients), "elapsed": elapsed, "began_at": began_at})


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    spec = worker_spec()
    if spec["mode"] == "setup":
        await setup(spec)
    elif spec["mode"] == "listen":
        listener = Listener(spec)
        try:
            await listener.run()
        finally:
            for client in listener.clients:
                with contextlib.suppress(Exception):
                    await client.close()
    elif spec["mode"] == "send":
        await send(spec)
    else:
        raise SystemExit(f"unknown mode {spec['mode']}")


if __name__ == "__main__":
    uvloop.run(main())
