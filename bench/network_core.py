"""Benchmarks of the network core. Prints figures; asserts nothing.

    .venv/bin/python bench/network_core.py [--envelopes 2000] [--concurrency 16] [--db URL]

1. Encrypt cost per recipient device: one 200-byte message through our session layer
   (unpickle the session, encrypt, pickle it again), which is what a sender pays per device.
2. Envelopes per second through a real `tidings serve` process over loopback HTTP: senders
   post single-device sends concurrently; the figure counts accepted (committed) envelopes.
   The server runs in its own process so the load generator does not share its GIL.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))

from core_helpers import envelope, register

from tidings.config import load_settings
from tidings.crypto import DeviceCrypto, PeerSessions, SessionManager
from tidings.db.migrate import upgrade
from tidings.runtime import build_runtime


def bench_encrypt(rounds: int = 3000) -> None:
    alice, bob = DeviceCrypto.create(), DeviceCrypto.create()
    key = bob.generate_one_time_keys(1)[0]
    manager = SessionManager(alice, b"k" * 32)
    peer = PeerSessions()
    manager.start_session(peer, bob.identity_key, key.key)
    plaintext = b"x" * 200
    start = time.perf_counter()
    for _ in range(rounds):
        manager.encrypt(peer, plaintext)
    elapsed = time.perf_counter() - start
    print(
        f"encrypt per device (200 B, with session pickling): {elapsed / rounds * 1e6:.0f} µs"
        f"  ({rounds / elapsed:,.0f}/s on one core)"
    )


def setup_people(url: str, concurrency: int):
    with httpx.Client(base_url=url) as client:
        recipient = register(client, "+15550100001", _invite("+15550100001"))
        senders = [
            register(client, f"+155501001{n:02d}", _invite(f"+155501001{n:02d}"))
            for n in range(concurrency)
        ]
    return recipient, senders


async def bench_server(url: str, total: int, recipient, senders) -> None:
    concurrency = len(senders)
    per_sender = total // concurrency
    async with httpx.AsyncClient(
        base_url=url, timeout=60, limits=httpx.Limits(max_connections=concurrency)
    ) as client:

        async def run(sender) -> None:
            for i in range(per_sender):
                response = await client.post(
                    "/v1/messages",
                    json={
                        "message_id": f"m{i}",
                        "to": recipient.phone,
                        "envelopes": [envelope(recipient.phone, recipient.device_id, b"c" * 300)],
                    },
                    headers=sender.headers,
                )
                response.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(run(s) for s in senders))
        elapsed = time.perf_counter() - start
    sent = per_sender * concurrency
    print(
        f"envelopes accepted through the server: {sent / elapsed:,.0f}/s"
        f"  ({sent} envelopes, {concurrency} concurrent senders, {elapsed:.2f} s)"
    )


_SETTINGS: dict[str, object] = {}


def _invite(phone: str) -> str:
    settings = _SETTINGS["settings"]

    async def issue() -> str:
        runtime = build_runtime(settings)
        try:
            async with runtime.database.unit_of_work() as uow:
                return (await runtime.accounts.invite(uow, phone)).code
        finally:
            await runtime.close()

    return asyncio.run(issue())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--envelopes", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--db", default="", help="database URL (default: SQLite in a temp folder)")
    args = parser.parse_args()
    bench_encrypt()
    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings(Path(folder), database={"url": args.db} if args.db else {})
        upgrade(settings.database_url)
        _SETTINGS["settings"] = settings
        port = 8199
        command = [
            sys.executable,
            "-m",
            "tidings.cli.main",
            "serve",
            "--data",
            folder,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
        if args.db:
            command += ["--db", args.db]
        server = subprocess.Popen(command)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(url)
            print(f"store: {settings.database_url.split(':', 1)[0]}")
            recipient, senders = setup_people(url, args.concurrency)
            asyncio.run(bench_server(url, args.envelopes, recipient, senders))
        finally:
            server.terminate()
            server.wait()


def wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/healthz").raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("the server did not start")


if __name__ == "__main__":
    main()
