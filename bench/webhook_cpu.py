"""Server CPU per delivered webhook: what the dispatcher pays to claim, sign, POST and record one
status webhook to one target. The dispatcher runs in this process on a fresh store; the receiver
(`bench.receiver`, uvicorn) in its own, so its work is not counted. CPU time of this process
(`time.process_time`), steadier than wall time on a shared machine.

    PYTHONPATH=src:. .venv/bin/python -m bench.webhook_cpu [--store postgresql] [--events 2000]
        [--batch 100] [--claim 100] [--trickle] [--repeat 3] [--loop uvloop|asyncio]
        [--host 127.0.0.1|localhost] [--profile FILE]

The event loop is uvloop by default, as under `tidings serve` (uvicorn picks it when installed).
`--host localhost` names the target instead of giving its address, so every POST also pays a
name lookup (the outbound policy checks what a name resolves to before each request).

`--trickle` enqueues `--batch` events at a time and delivers them before the next, as a steady
flow of messages does (small claims, no backlog); without it every event is queued first.
`--claim` is the dispatcher's claim size.

"posting" is the CPU spent inside the dispatcher's send step (decrypting the stored body,
signing, the HTTP exchange), the rest is claiming and recording in the database. Each repeat
enqueues and delivers its own events on the same store and receiver; the figure to quote is
the median.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx

from bench.harness import (
    ROOT,
    VERIFY_TOKEN,
    Service,
    child_env,
    free_port,
    scratch_database,
    wait_until_up,
)
from tidings.business_api.wire_webhooks import status_value
from tidings.crypto.sealing import Sealer, new_master_key
from tidings.db.engine import make_engine
from tidings.db.uow import Database
from tidings.kit.clock import SystemClock
from tidings.outbound import OutboundPolicy
from tidings.webhooks.service import WebhookService
from tidings.webhooks.signing import encode_body, envelope

WABA = "bench-waba"
PHONE_NUMBER_ID = "bench-phone"
SECRET = "bench-app-secret-0123456789abcdef"
STATUSES = ("sent", "delivered", "read")


def status_webhook_value(n: int) -> dict[str, Any]:
    """A status webhook's value as the business platform builds it (about 700 bytes sent)."""
    status = STATUSES[n % 3]
    recipient = f"4915112{n % 500:06d}"
    entry: dict[str, Any] = {
        "id": f"wamid.{uuid.uuid4().hex}{uuid.uuid4().hex[:16]}",
        "status": status,
        "timestamp": str(1_764_000_000 + n),
        "recipient_id": recipient,
        "biz_opaque_callback_data": f"order-{n:08d}",
        "conversation": {
            "id": uuid.uuid4().hex,
            "expiration_timestamp": str(1_764_086_400 + n),
            "origin": {"type": "marketing"},
        },
        "pricing": {
            "billable": True,
            "pricing_model": "PMP",
            "type": "regular",
            "category": "marketing",
        },
    }
    return status_value(
        phone_number_id=PHONE_NUMBER_ID,
        display_phone_number="+15550109999",
        status=entry,
        wa_id=recipient,
        user_id=f"DE.{uuid.uuid4().hex[:24]}",
    )


def start_receiver() -> Service:
    port = free_port()
    command = [sys.executable, "-m", "bench.receiver", str(port), VERIFY_TOKEN]
    process = subprocess.Popen(command, env=child_env(), cwd=ROOT)
    service = Service("receiver", f"http://127.0.0.1:{port}", process)
    wait_until_up(service)
    return service


async def enqueue(service: WebhookService, database: Database, count: int, batch: int) -> None:
    for start in range(0, count, batch):
        values = [status_webhook_value(n) for n in range(start, min(count, start + batch))]
        async with database.unit_of_work() as uow:
            await service.enqueue_many(
                uow, waba_id=WABA, phone_number_id=PHONE_NUMBER_ID, field="messages", values=values
            )


async def deliver_all(service: WebhookService, expected: int) -> int:
    delivered = 0
    while delivered < expected:
        attempted = await service.dispatcher.run_once()
        if attempted == 0:
            raise RuntimeError(f"nothing more to deliver after {delivered} of {expected}")
        delivered += attempted
    return delivered


async def posts_received(receiver: Service) -> int:
    async with httpx.AsyncClient() as client:
        response = await client.get(receiver.url + "/stats")
    return int(json.loads(response.content)["posts"])


async def measure(url: str, args: argparse.Namespace, receiver: Service) -> list[dict[str, float]]:
    read_engine = make_engine(url, read_only=True) if url.startswith("sqlite") else None
    database = Database(make_engine(url), read_engine)
    sealer = Sealer(new_master_key())

    async def secret_for(waba_id: str) -> str | None:
        return SECRET if waba_id == WABA else None

    service = WebhookService(database, SystemClock(), sealer, secret_for, OutboundPolicy.embedded())
    dispatcher = service.dispatcher
    dispatcher.batch_size = args.claim
    posting = [0.0]
    send_all = dispatcher._send_all

    async def timed_send_all(claimed: Any) -> Any:
        cpu = time.process_time()
        try:
            return await send_all(claimed)
        finally:
            posting[0] += time.process_time() - cpu

    dispatcher._send_all = timed_send_all  # type: ignore[method-assign]
    runs: list[dict[str, float]] = []
    try:
        url = f"http://{args.host}:{receiver.port}/hook"
        await service.set_app_callback(url, VERIFY_TOKEN)
        await service.subscribe_app(WABA)
        # Warm up: imports, the kept-alive connection, statement caches.
        await enqueue(service, database, 200, args.batch)
        await deliver_all(service, 200)
        sample = status_webhook_value(1)
        size = len(encode_body(envelope(WABA, "messages", sample)))
        for _ in range(args.repeat):
            # All queued first (a backlog), or a trickle: each enqueue delivered before the next.
            chunk = args.batch if args.trickle else args.events
            before = await posts_received(receiver)
            profiler = cProfile.Profile(time.process_time) if args.profile else None
            posting[0] = 0.0
            cpu = wall = 0.0
            delivered = 0
            for start in range(0, args.events, chunk):
                count = min(chunk, args.events - start)
                await enqueue(service, database, count, args.batch)
                cpu_at, wall_at = time.process_time(), time.perf_counter()
                if profiler is not None:
                    profiler.enable()
                delivered += await deliver_all(service, count)
                if profiler is not None:
                    profiler.disable()
                cpu += time.process_time() - cpu_at
                wall += time.perf_counter() - wall_at
            got = await posts_received(receiver) - before
            if got != args.events or delivered != args.events:
                raise RuntimeError(f"receiver got {got}, dispatcher sent {delivered}")
            runs.append(
                {
                    "cpu_us": cpu / delivered * 1e6,
                    "posting_us": posting[0] / delivered * 1e6,
                    "per_s": delivered / wall,
                    "bytes": size,
                }
            )
            print(
                f"  run: {runs[-1]['cpu_us']:,.0f} µs CPU per webhook "
                f"(posting {runs[-1]['posting_us']:,.0f}), {runs[-1]['per_s']:,.0f} webhooks/s",
                flush=True,
            )
            if profiler is not None:
                profiler.dump_stats(args.profile)
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
    finally:
        await service.close()
        await database.dispose()
    return runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", default="sqlite", choices=("sqlite", "postgresql"))
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100, help="events per enqueue transaction")
    parser.add_argument(
        "--claim",
        type=int,
        default=100,
        help="deliveries per claim (the dispatcher's batch; a few under a steady trickle)",
    )
    parser.add_argument(
        "--trickle",
        action="store_true",
        help="deliver each enqueue batch before the next (no backlog) instead of all at once",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loop", default="uvloop", choices=("uvloop", "asyncio"))
    parser.add_argument("--host", default="127.0.0.1", help="the target URL's host")
    parser.add_argument("--profile", help="write a cProfile of the last run here")
    args = parser.parse_args()
    receiver: Service | None = None
    with scratch_database(args.store, "webhook-cpu") as (_data, url):
        try:
            receiver = start_receiver()
            if args.loop == "uvloop":
                import uvloop

                runs = uvloop.run(measure(url, args, receiver))
            else:
                runs = asyncio.run(measure(url, args, receiver))
        finally:
            if receiver is not None:
                receiver.stop()
    cpu = statistics.median(r["cpu_us"] for r in runs)
    posting = statistics.median(r["posting_us"] for r in runs)
    rate = statistics.median(r["per_s"] for r in runs)
    trickle = f", a trickle of {args.batch}" if args.trickle else ""
    print(
        f"{args.store}, {args.loop}: {args.events} status webhooks of {runs[0]['bytes']:.0f} "
        f"bytes to one target ({args.host}), claimed {args.claim} at a time{trickle}, "
        f"median of {len(runs)}: {cpu:,.0f} µs CPU per webhook "
        f"(posting {posting:,.0f}, claim and record {cpu - posting:,.0f}), {rate:,.0f} webhooks/s"
    )


if __name__ == "__main__":
    main()
