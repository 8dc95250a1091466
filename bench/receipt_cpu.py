"""CPU per receipt a customer's device posts, in one process: `POST /v1/receipts` through the
whole app (httpx's ASGI transport, no sockets), filing a notice for each device of the sender
(and, for reads, the reader's other devices). In the sustained scenario every message brings
four of them (delivered and read from two devices), so the device's own request is a large
share of the server's CPU per message. CPU time of this process.

`--acks` then measures what the sender's device pays to acknowledge those notices, one
`MailboxService.ack` per notice at the same concurrency (the gateway's websocket and
`POST /v1/mailbox/ack` both end there; every message brings one per device).

`--frames` measures what a listening device's frame costs the core at the service level:
acknowledging one envelope and filing the receipt it queued, as two calls (`ack`, then
`receipt`: the ack frame, then the receipt's own request, whose HTTP layer comes on top) and
as the one call an ack frame carrying the receipt makes (`ack_and_file`), alternating rounds.

    PYTHONPATH=src:. python -m bench.receipt_cpu [--store postgresql] [--receipts 2000]
        [--profile out] [--routed] [--acks] [--frames]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import time
import uuid
from pathlib import Path

import httpx

from bench.core_filing import register
from bench.harness import customer_phone, scratch_database, use_bench_settings
from tidings.app import create_app
from tidings.config import load_settings
from tidings.protocol import api
from tidings.runtime import Runtime, build_runtime

CONCURRENCY = 16


async def measure(
    runtime: Runtime, receipts: int, profile: Path | None, routed: bool
) -> tuple[float, float]:
    """CPU µs per receipt at concurrency 16, delivered and read alternating, after a warm-up;
    `routed`: through FastAPI rather than the path in front of it. Then CPU µs per ack of the
    notices they filed, one per call at the same concurrency."""
    app = create_app(runtime)
    app.fast_paths = not routed
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        business = "+15550109999"
        business_token = (await register(runtime, client, business, companion=False))[0]
        customers = [
            (await register(runtime, client, customer_phone(n), companion=False))[0]
            for n in range(8)
        ]

        async def one(n: int) -> None:
            answer = await client.post(
                "/v1/receipts",
                json={
                    "to": business,
                    "type": "delivered" if n % 2 == 0 else "read",
                    "message_ids": [uuid.uuid4().hex],
                },
                headers={"Authorization": f"Bearer {customers[n % len(customers)]}"},
            )
            assert answer.status_code == 200, answer.text

        for n in range(CONCURRENCY):
            await one(n)
        queue = iter(range(receipts))

        async def worker() -> None:
            for n in queue:
                await one(n)

        profiler = cProfile.Profile() if profile is not None else None
        cpu = time.process_time()
        if profiler is not None:
            profiler.enable()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        if profiler is not None:
            profiler.disable()
        cpu = time.process_time() - cpu
        if profiler is not None and profile is not None:
            profiler.dump_stats(str(profile))
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        return cpu / receipts * 1e6, await _acks(runtime, business_token, CONCURRENCY + receipts)


async def _acks(runtime: Runtime, token: str, filed: int) -> float:
    """CPU µs per `MailboxService.ack` of one notice, at concurrency 16."""
    device = await runtime.devices.authenticate(token)
    seqs = iter(range(1, filed + 1))

    async def worker() -> None:
        for seq in seqs:
            assert await runtime.mailbox.ack(device, [seq]) == 1

    cpu = time.process_time()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return (time.process_time() - cpu) / filed * 1e6


async def frames(runtime: Runtime, rounds: int, per_round: int) -> tuple[float, float]:
    """CPU µs per frame (one envelope acknowledged, one receipt filed) at concurrency 16:
    (two calls, one call), each the median of `rounds` alternating rounds."""
    app = create_app(runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        business = "+15550109999"
        business_token = (await register(runtime, client, business, companion=False))[0]
        customer = customer_phone(0)
        customer_token = (await register(runtime, client, customer, companion=False))[0]
    device = await runtime.devices.authenticate(customer_token)
    sender = await runtime.devices.authenticate(business_token)

    async def fill(count: int) -> list[int]:
        """`count` notices in the customer's mailbox (the business's receipts): their seqs."""
        request = api.ReceiptRequest(to=customer, type="read", message_ids=["m"])
        for _ in range(count):
            await runtime.mailbox.receipt(sender, request)
        page_seqs: list[int] = []
        after = 0
        while len(page_seqs) < count:
            page = await runtime.mailbox.fetch(device, after, 1000)
            page_seqs += [e.seq for e in page.envelopes]
            after = page_seqs[-1]
        return page_seqs[-count:]

    async def timed(combined: bool) -> float:
        seqs = iter(await fill(per_round))
        receipt = api.ReceiptRequest(to=business, type="delivered", message_ids=["m"])

        async def worker() -> None:
            for seq in seqs:
                if combined:
                    await runtime.mailbox.ack_and_file(device, [seq], [receipt])
                else:
                    await runtime.mailbox.ack(device, [seq])
                    await runtime.mailbox.receipt(device, receipt)

        cpu = time.process_time()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return (time.process_time() - cpu) / per_round * 1e6

    apart: list[float] = []
    together: list[float] = []
    for _ in range(rounds):
        apart.append(await timed(False))
        together.append(await timed(True))
    return statistics.median(apart), statistics.median(together)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", default="sqlite", choices=("sqlite", "postgresql"))
    parser.add_argument("--receipts", type=int, default=2000)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--routed", action="store_true", help="through FastAPI's router")
    parser.add_argument("--acks", action="store_true", help="also CPU per ack of the notices")
    parser.add_argument(
        "--frames", action="store_true", help="instead: an ack and its receipt, two calls or one"
    )
    args = parser.parse_args()
    use_bench_settings(args.store)
    with scratch_database(args.store, "receipt-cpu") as (data, url):
        settings = load_settings(data, database={"url": url})

        async def run() -> tuple[float, float]:
            runtime = build_runtime(settings)
            try:
                if args.frames:
                    return await frames(runtime, 7, args.receipts // 4)
                return await measure(runtime, args.receipts, args.profile, args.routed)
            finally:
                await runtime.close()

        cpu, ack_cpu = asyncio.run(run())
    if args.frames:
        print(
            f"{args.store}: per frame (an ack and its receipt), median of 7 alternating rounds:"
            f" {cpu:,.0f} µs CPU as two calls (ack, receipt), {ack_cpu:,.0f} µs as one"
            " (ack_and_file)"
        )
        return
    how = "through FastAPI" if args.routed else "in front of FastAPI"
    print(f"{args.store}, {how}: {cpu:,.0f} µs CPU per receipt ({args.receipts} receipts)")
    if args.acks:
        print(f"{args.store}: {ack_cpu:,.0f} µs CPU per ack, MailboxService.ack in process")


if __name__ == "__main__":
    main()
