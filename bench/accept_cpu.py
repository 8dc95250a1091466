"""CPU per accepted send, in one process: the accept scenario's request through the whole app
(httpx's ASGI transport, no sockets, no workers), against the bare baseline's app on the same
kind of database. A steadier figure than the scenario's rate on a shared machine, since it
counts this process's CPU time rather than wall-clock throughput.

    PYTHONPATH=src python -m bench.accept_cpu [--store postgresql] [--sends 400] [--profile out]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
from pathlib import Path
from typing import Any

import httpx

from bench.bare_asgi import build_app as build_bare_app
from bench.harness import customer_phone, scratch_database, use_bench_settings
from tidings.app import create_app
from tidings.cli.business import _create
from tidings.config import load_settings
from tidings.runtime import build_runtime
from tidings.signals.models import CustomerWindow

CONCURRENCY = 32


def text_send(to: str, n: int) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"body": f"Your order {n} has shipped"},
    }


async def drive(
    app: Any, path: str, headers: dict[str, str], sends: int, to: list[str], calls: bool = False
) -> tuple[float, float, float]:
    """(CPU seconds, wall seconds, Python function calls) per send at concurrency 32, after a
    warm-up. Calls (counted only with `calls`, under cProfile, which slows everything) are
    the steadiest of the three on a shared machine."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:

        async def one(n: int) -> None:
            answer = await c.post(path, json=text_send(to[n % len(to)], n))
            assert answer.status_code == 200, answer.text

        for n in range(32):
            await one(n)
        queue = iter(range(sends))

        async def worker() -> None:
            for n in queue:
                await one(n)

        profiler = cProfile.Profile() if calls else None
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        if profiler is not None:
            profiler.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        counted = pstats.Stats(profiler).total_calls if profiler is not None else 0  # type: ignore[attr-defined]
        return cpu / sends, wall / sends, counted / sends


async def open_windows(runtime: Any, phone_number_id: str, customers: list[str]) -> None:
    phone = await runtime.businesses.phone_by_number_id(phone_number_id)
    now = runtime.clock.now()
    async with runtime.database.unit_of_work() as uow:
        for customer in customers:
            uow.session.add(
                CustomerWindow(phone_id=phone.phone_pk, customer=customer, last_inbound_at=now)
            )


def compare(
    args: argparse.Namespace, data: Path, url: str
) -> tuple[float, float, float, float, float, float]:
    """Tidings' CPU, wall time and calls per send, then the bare app's, on the database."""
    settings = load_settings(data, database={"url": url})
    made = asyncio.run(_create(settings, "Bench Shop", "+15550109999"))
    customers = [customer_phone(n) for n in range(4)]
    path = f"/v23.0/{made.phone_number_id}/messages"

    async def ours() -> tuple[float, float, float]:
        runtime = build_runtime(settings)
        try:
            await open_windows(runtime, made.phone_number_id, customers)
            app = create_app(runtime)
            auth = {"Authorization": f"Bearer {made.access_token}"}
            if args.profile is None:
                return await drive(app, path, auth, args.sends, customers, args.calls)
            profiler = cProfile.Profile()
            profiler.enable()
            try:
                return await drive(app, path, auth, args.sends, customers)
            finally:
                profiler.disable()
                profiler.dump_stats(str(args.profile))
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(60)
        finally:
            await runtime.close()

    async def bare() -> tuple[float, float, float]:
        app = build_bare_app(url)
        async with app.router.lifespan_context(app):
            return await drive(app, path, {}, args.sends, customers, args.calls)

    base_cpu, base_wall, base_calls = asyncio.run(bare())
    cpu, wall, calls = asyncio.run(ours())
    return cpu, wall, calls, base_cpu, base_wall, base_calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", default="sqlite", choices=("sqlite", "postgresql"))
    parser.add_argument("--sends", type=int, default=400)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--calls", action="store_true", help="count function calls per send")
    args = parser.parse_args()
    use_bench_settings(args.store)  # the scenario's server runs with the same limits
    with scratch_database(args.store, "accept-cpu") as (data, url):
        cpu, wall, calls, base_cpu, base_wall, base_calls = compare(args, data, url)
    print(
        f"{args.store}: tidings {cpu * 1e6:,.0f} µs CPU/send ({wall * 1e6:,.0f} wall); "
        f"bare {base_cpu * 1e6:,.0f} µs ({base_wall * 1e6:,.0f} wall); "
        f"CPU ratio bare/tidings {base_cpu / cpu:.2f}"
        + (f"; calls/send tidings {calls:,.0f}, bare {base_calls:,.0f}" if args.calls else "")
    )


if __name__ == "__main__":
    main()
