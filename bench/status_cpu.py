"""CPU per recorded status, in one process: what the business worker pays to record a batch of
outbound messages' `sent`, `delivered` and `read` (the message row, the charge, the status
webhook event and its delivery row, the customer signal) in one unit of work, as the delivery
pass and the journal do. CPU time of this process, steadier than wall time on a shared machine.

    PYTHONPATH=src python -m bench.status_cpu [--store postgresql] [--messages 600] [--batch 100]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
from pathlib import Path

from bench.accept_cpu import open_windows
from bench.harness import customer_phone, scratch_database, use_bench_settings
from tidings.cli.business import _create
from tidings.config import load_settings
from tidings.runtime import Runtime, build_runtime
from tidings.webhooks.models import WebhookPhoneOverride

STATUSES = ("sent", "delivered", "read")


async def subscribe(runtime: Runtime, phone_number_id: str, waba_id: str) -> None:
    """A webhook target, so every status also queues a delivery row (as in production)."""
    await runtime.webhooks.subscribe_app(waba_id)
    async with runtime.database.unit_of_work() as uow:
        uow.session.add(
            WebhookPhoneOverride(
                phone_number_id=phone_number_id,
                waba_id=waba_id,
                override_callback_uri="http://127.0.0.1:9/hook",
                verify_token="bench",
                updated_at=runtime.clock.now(),
            )
        )


async def measure(
    runtime: Runtime, phone_number_id: str, messages: int, batch: int, profile: Path | None
) -> dict[str, float]:
    """CPU µs per status for each of sent, delivered and read."""
    phone = await runtime.businesses.phone_by_number_id(phone_number_id)
    customers = [customer_phone(n) for n in range(50)]
    await open_windows(runtime, phone_number_id, customers)
    ids: list[int] = []
    messaging = runtime.business_messaging
    for n in range(messages):
        await messaging.accept(phone, customers[n % len(customers)], "text", {"body": f"o {n}"})
    async with runtime.database.read_only() as uow:
        from tidings.business.repository import BusinessRepository

        rows = await BusinessRepository(uow.session).pending_outbound(phone.phone_pk, messages)
        ids = [row.id for row in rows]
    figures: dict[str, float] = {}
    profiler = cProfile.Profile() if profile is not None else None
    for status in STATUSES:
        cpu = time.process_time()
        if profiler is not None:
            profiler.enable()
        for start in range(0, len(ids), batch):
            await messaging._record_statuses(
                phone, [(row_id, status, None) for row_id in ids[start : start + batch]]
            )
        if profiler is not None:
            profiler.disable()
        figures[status] = (time.process_time() - cpu) / len(ids) * 1e6
    if profiler is not None and profile is not None:
        profiler.dump_stats(str(profile))
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", default="sqlite", choices=("sqlite", "postgresql"))
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--profile", type=Path)
    args = parser.parse_args()
    use_bench_settings(args.store)
    with scratch_database(args.store, "status-cpu") as (data, url):
        settings = load_settings(data, database={"url": url})
        made = asyncio.run(_create(settings, "Bench Shop", "+15550109999"))

        async def run() -> dict[str, float]:
            runtime = build_runtime(settings)
            try:
                await subscribe(runtime, made.phone_number_id, made.waba_id)
                return await measure(
                    runtime, made.phone_number_id, args.messages, args.batch, args.profile
                )
            finally:
                await runtime.close()

        figures = asyncio.run(run())
    print(
        f"{args.store}: CPU per status in batches of {args.batch} ({args.messages} messages): "
        + ", ".join(f"{status} {figures[status]:,.0f} µs" for status in STATUSES)
    )


if __name__ == "__main__":
    main()
