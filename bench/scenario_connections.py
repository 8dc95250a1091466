"""Scenario 4, connections: idle device websockets held by one server process. RSS per
connection, and the time from one send call until every connection has the push. The baseline
is the bare app holding the same number of idle websockets and pushing one body to all.

Two rounds, each on a freshly started server:
- one device: every connection carries one device's token (its mailbox drained first), so one
  message reaches every one of them. Each connection authenticates and is held on its own, but
  the gateway groups connections by device: the push is one mailbox read for all of them, where
  real traffic (one or two connections per device) reads once per device. So the push time is a
  best case for the database side and a worst case for one device's fan-out.
- one device per connection, as real clients connect: as many accounts as connections, each
  with one device registered through the core's service. Each connection then also costs its
  device's group and bus topics. This round's RSS is the figure the target is held to.
The push is also timed in the server's CPU seconds, which other work on the machine disturbs
far less than the wall clock.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from bench.harness import (
    Report,
    Service,
    Stack,
    Worker,
    cpu_seconds,
    customer_phone,
    percentiles_ms,
    rss_kb,
    setup_customers,
    stack,
    start_worker,
)

NAME = "connections"
TITLE = "idle device websockets in one process"
TARGET_KB = 30.0


FIRST_DEVICE_PHONE = 100_000  # customer_phone(n) numbers of the one-device accounts


def provision_devices(made: Stack, count: int) -> list[str]:
    """`count` accounts with one device each, registered through the core's service as the
    HTTP route does (no one-time keys beyond the fallback, no device list): their tokens."""
    from tidings.cli.server import settings_for
    from tidings.crypto import AccountKey, DeviceCrypto
    from tidings.protocol import api
    from tidings.runtime import build_runtime

    async def register() -> list[str]:
        runtime = build_runtime(settings_for(made.data, made.store.tidings_url or None))
        try:
            tokens = []
            for n in range(count):
                phone = customer_phone(FIRST_DEVICE_PHONE + n)
                async with runtime.database.unit_of_work() as uow:
                    code = (await runtime.accounts.invite(uow, phone)).code
                crypto = DeviceCrypto.create()
                keys = api.DeviceKeys(
                    identity_key=crypto.identity_key,
                    signing_key=crypto.signing_key,
                    fallback_key=crypto.generate_fallback_key(),
                )
                account_key = AccountKey.generate().public_b64
                made_device = await runtime.devices.register(
                    api.RegisterRequest(
                        phone=phone, code=code, account_key=account_key, device=keys
                    )
                )
                tokens.append(made_device.device_token)
            return tokens
        finally:
            await runtime.close()

    return asyncio.run(register())


def hold(url: str, count: int, profile: str | None, tokens: list[str] | None) -> Worker:
    spec: dict[str, Any] = {"mode": "hold", "url": url, "count": count}
    if profile:
        spec["profile"] = profile
    if tokens:
        spec["tokens"] = tokens
    worker = start_worker("sockets", spec)
    worker.wait_status(lambda s: s.get("connected", 0) >= count, 600, f"{count} connections")
    return worker


def measure(
    service: Service,
    url: str,
    count: int,
    push: Any,
    settle: float,
    profile: str | None = None,
    tokens: list[str] | None = None,
) -> dict[str, Any]:
    """RSS before and after `count` idle connections, then the push to all of them (when
    there is a `push`)."""
    time.sleep(settle)
    before = rss_kb(service.pid)
    clients = hold(url, count, profile, tokens)
    time.sleep(settle)
    after = rss_kb(service.pid)
    held = {
        "rss_before_kb": before,
        "rss_after_kb": after,
        "kb_per_connection": (after - before) / count,
    }
    if push is None:
        clients.stop()
        clients.result()
        return held
    cpu = cpu_seconds(service.pid)
    began = time.time()
    push()
    try:
        clients.wait_status(lambda s: s.get("first_frames", 0) >= count, 120, "the push")
        cpu = cpu_seconds(service.pid) - cpu
    finally:
        clients.stop()
    arrivals = [t - began for t in clients.result()["first_frames"]]
    return {**held, "push_ms": percentiles_ms(arrivals), "push_cpu_ms": cpu * 1000}


def run(store: str, size: str, command: str) -> Report:
    count, settle = {"tiny": (10, 0.2), "quick": (200, 2.0), "full": (2000, 2.0)}[size]
    with stack(store) as made:
        receiver = made.start_receiver()
        business = made.create_business()
        made.route_webhooks(business, receiver)
        tokens = provision_devices(made, count)
        server = made.start_tidings()
        [customer] = setup_customers(made, server, business, 1, companions=False, receiver=receiver)
        body = {
            "messaging_product": "whatsapp",
            "to": customer["phone"],
            "type": "text",
            "text": {"body": "to every connection"},
        }

        def send() -> None:
            httpx.post(
                server.url + business.messages_path, json=body, headers=business.auth, timeout=60
            ).raise_for_status()

        ours = measure(
            server,
            server.url.replace("http://", "ws://") + "/v1/ws",
            count,
            send,
            settle,
            customer["profiles"][0],
        )
        server.stop()  # a fresh process, so the first round's freed memory is not reused
        server = made.start_tidings()
        each = measure(
            server,
            server.url.replace("http://", "ws://") + "/v1/ws",
            count,
            None,
            settle,
            tokens=tokens,
        )
        baseline = made.start_baseline()

        def bare_send() -> None:
            httpx.post(baseline.url + "/send", json=body, timeout=60).raise_for_status()

        bare = measure(
            baseline, baseline.url.replace("http://", "ws://") + "/ws", count, bare_send, settle
        )
    report = Report(NAME, TITLE, command, store, size)
    report.row("idle connections", str(count), str(count))
    report.row(
        "RSS before (MB)",
        f"{ours['rss_before_kb'] / 1024:.1f}",
        f"{bare['rss_before_kb'] / 1024:.1f}",
    )
    report.row(
        "RSS with connections (MB)",
        f"{ours['rss_after_kb'] / 1024:.1f}",
        f"{bare['rss_after_kb'] / 1024:.1f}",
    )
    report.row(
        "RSS per connection (KB)",
        f"{ours['kb_per_connection']:.1f}",
        f"{bare['kb_per_connection']:.1f}",
    )
    report.row(
        "a device per connection: RSS (MB)",
        f"{each['rss_after_kb'] / 1024:.1f} (from {each['rss_before_kb'] / 1024:.1f})",
    )
    report.row("a device per connection: KB each", f"{each['kb_per_connection']:.1f}")
    for key in ("p50", "max"):
        report.row(
            f"send to push on {'half' if key == 'p50' else 'all'} (ms)",
            f"{ours['push_ms'][key]:.0f}",
            f"{bare['push_ms'][key]:.0f}",
        )
    report.row(
        "server CPU for the push (ms)", f"{ours['push_cpu_ms']:.0f}", f"{bare['push_cpu_ms']:.0f}"
    )
    report.target(
        "connections",
        f"≤ {TARGET_KB:.0f} KB RSS per idle connection",
        f"{each['kb_per_connection']:.1f} KB (one device per connection)",
        each["kb_per_connection"] <= TARGET_KB,
    )
    report.figures = {
        "tidings": ours,
        "tidings_device_each": each,
        "baseline": bare,
        "connections": count,
    }
    return report
