"""Scenario 4, connections: idle device websockets held by one server process. RSS per
connection, and the time from one send call until every connection has the push. The baseline
is the bare app holding the same number of idle websockets and pushing one body to all.

All connections carry one device's token (its mailbox drained first), so one message reaches
every one of them. Each connection still authenticates and is held on its own, but the gateway
groups connections by device: the push is one mailbox read for all of them, where real traffic
(one or two connections per device) reads once per device. So the RSS figure is fair, while the
push time is a best case for the database side and a worst case for one device's fan-out."""

from __future__ import annotations

import time
from typing import Any

import httpx

from bench.harness import (
    Report,
    Service,
    Worker,
    percentiles_ms,
    rss_kb,
    setup_customers,
    stack,
    start_worker,
)

NAME = "connections"
TITLE = "idle device websockets in one process"
TARGET_KB = 30.0


def hold(url: str, count: int, profile: str | None) -> Worker:
    spec: dict[str, Any] = {"mode": "hold", "url": url, "count": count}
    if profile:
        spec["profile"] = profile
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
) -> dict[str, Any]:
    """RSS before and after `count` idle connections, then the push to all of them."""
    time.sleep(settle)
    before = rss_kb(service.pid)
    clients = hold(url, count, profile)
    time.sleep(settle)
    after = rss_kb(service.pid)
    began = time.time()
    push()
    try:
        clients.wait_status(lambda s: s.get("first_frames", 0) >= count, 120, "the push")
    finally:
        clients.stop()
    arrivals = [t - began for t in clients.result()["first_frames"]]
    return {
        "rss_before_kb": before,
        "rss_after_kb": after,
        "kb_per_connection": (after - before) / count,
        "push_ms": percentiles_ms(arrivals),
    }


def run(store: str, size: str, command: str) -> Report:
    count, settle = {"tiny": (10, 0.2), "quick": (200, 2.0), "full": (2000, 2.0)}[size]
    with stack(store) as made:
        receiver = made.start_receiver()
        business = made.create_business()
        made.route_webhooks(business, receiver)
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
    for key in ("p50", "max"):
        report.row(
            f"send to push on {'half' if key == 'p50' else 'all'} (ms)",
            f"{ours['push_ms'][key]:.0f}",
            f"{bare['push_ms'][key]:.0f}",
        )
    report.target(
        "connections",
        f"≤ {TARGET_KB:.0f} KB RSS per idle connection",
        f"{ours['kb_per_connection']:.1f} KB",
        ours["kb_per_connection"] <= TARGET_KB,
    )
    report.figures = {"tidings": ours, "baseline": bare, "connections": count}
    return report
