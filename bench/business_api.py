"""Business API benchmarks. Prints figures; asserts nothing.

    .venv/bin/python bench/business_api.py [--messages 1000] [--events 1000] [--concurrency 16]

1. Messages accepted per second on `POST /v23.0/{phone_number_id}/messages` of a real
   `tidings serve` process (SQLite), beside the same load against a bare FastAPI handler
   (bench/bare_asgi.py) in the same run: the ratio is what our endpoint costs.
2. Webhook events delivered per second by the dispatcher to a bare receiver, beside plain
   POSTs from httpx to that receiver at the same concurrency. Events for one target go out in
   commit order, one at a time, so this is also the per-endpoint ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tidings.config import load_settings
from tidings.db.migrate import upgrade
from tidings.runtime import build_runtime

HERE = Path(__file__).resolve().parent
CUSTOMER = "+15550100001"


def start(command: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{command[0]} did not start")


async def hammer(
    url: str, body: dict, total: int, concurrency: int, headers: dict | None = None
) -> float:
    """Requests per second for `total` POSTs from `concurrency` workers."""
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits, headers=headers or {}) as client:
        per_worker = total // concurrency

        async def worker() -> None:
            for _ in range(per_worker):
                response = await client.post(url, json=body)
                response.raise_for_status()

        begin = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return per_worker * concurrency / (time.perf_counter() - begin)


def cli(*args: str) -> str:
    return subprocess.check_output([sys.executable, "-m", "tidings.cli.main", *args], text=True)


def bench_send(folder: str, total: int, concurrency: int) -> None:
    made = json.loads(
        cli(
            "business",
            "create",
            "--name",
            "Bench",
            "--phone",
            "+15550109999",
            "--data",
            folder,
            "--json",
        )
    )
    code = cli("admin", "invite", CUSTOMER, "--data", folder).strip()
    tidings = start(
        [
            sys.executable,
            "-m",
            "tidings.cli.main",
            "serve",
            "--data",
            folder,
            "--port",
            "8301",
            "--log-level",
            "warning",
        ],
        8301,
    )
    bare = start([sys.executable, str(HERE / "bare_asgi.py"), "8302"], 8302)
    try:
        cli(
            "register",
            "--server",
            "http://127.0.0.1:8301",
            "--phone",
            CUSTOMER,
            "--code",
            code,
            "--profile",
            f"{folder}/customer",
        )
        body = {
            "messaging_product": "whatsapp",
            "to": CUSTOMER,
            "type": "text",
            "text": {"body": "benchmark message"},
        }
        ours = asyncio.run(
            hammer(
                f"http://127.0.0.1:8301/v23.0/{made['phone_number_id']}/messages",
                body,
                total,
                concurrency,
                {"Authorization": f"Bearer {made['access_token']}"},
            )
        )
        baseline = asyncio.run(
            hammer("http://127.0.0.1:8302/v23.0/1/messages", body, total, concurrency)
        )
        print(
            f"send endpoint: {ours:,.0f} messages/s accepted;"
            f" bare ASGI handler: {baseline:,.0f} req/s"
            f"  (ratio {ours / baseline:.2f}; {total} requests, {concurrency} concurrent, SQLite)"
        )
    finally:
        for process in (tidings, bare):
            process.terminate()
            process.wait()


async def bench_webhooks(folder: str, total: int, concurrency: int) -> None:
    settings = load_settings(Path(folder) / "webhooks")
    receiver = start([sys.executable, str(HERE / "bare_asgi.py"), "8303"], 8303)
    runtime = build_runtime(settings)
    try:
        target = "http://127.0.0.1:8303/hook"
        baseline = await hammer(target, {"object": "whatsapp_business_account"}, total, concurrency)
        waba = (await runtime.businesses.create("Bench", "+15550109990")).waba_id
        await runtime.webhooks.set_app_callback(target, "bench")
        await runtime.webhooks.subscribe_app(waba)
        for start_at in range(0, total, 200):
            async with runtime.database.unit_of_work() as uow:
                for n in range(start_at, min(total, start_at + 200)):
                    await runtime.webhooks.enqueue(
                        uow, waba_id=waba, phone_number_id=None, field="messages", value={"n": n}
                    )
        begin = time.perf_counter()
        delivered = 0
        while delivered < total:
            sent = await runtime.webhooks.dispatcher.run_once()
            if not sent:
                break
            delivered += sent
        rate = delivered / (time.perf_counter() - begin)
        print(
            f"webhook events delivered: {rate:,.0f}/s to one endpoint (in order); plain httpx POSTs"
            f" to the same receiver: {baseline:,.0f}/s at concurrency {concurrency}"
        )
    finally:
        await runtime.close()
        receiver.terminate()
        receiver.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        bench_send(folder, args.messages, args.concurrency)
        upgrade(load_settings(Path(folder) / "webhooks").database_url)
        asyncio.run(bench_webhooks(folder, args.events, args.concurrency))


if __name__ == "__main__":
    main()
