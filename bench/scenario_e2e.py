"""Scenario 2, end to end: from the send call to the plaintext on the customer's devices (a
primary and its linked companion) at a steady 200 messages/s. The baseline is the bare app
pushing each accepted body to two plain websockets, timed the same way."""

from __future__ import annotations

import time
from typing import Any

import httpx

from bench.harness import (
    Business,
    Report,
    Service,
    Worker,
    cpu_seconds,
    percentiles_ms,
    run_worker,
    setup_customers,
    stack,
    start_worker,
)

NAME = "e2e"
TITLE = "send call to plaintext on both devices at 200 messages/s"
RATE = 200
CONCURRENCY = 32
TARGET_P99_MS = 20.0


def stamped(to: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "to": to,
        "type": "text",
        "text": {"body": "bench __SEQ__ __TS__"},
    }


def paced(service: Service, path: str, headers: dict[str, str], to: str, seconds: float) -> Any:
    return run_worker(
        "loadgen",
        {
            "host": "127.0.0.1",
            "port": service.port,
            "path": path,
            "headers": headers,
            "bodies": [stamped(to)],
            "rate": RATE,
            "duration": seconds,
            "concurrency": CONCURRENCY,
        },
    )


def warm_up(server: Service, business: Business, to: str, listener: Worker, devices: int) -> None:
    """The first message to a device starts its Olm session; time only what follows."""
    body = {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": "warmup"}}
    httpx.post(
        server.url + business.messages_path, json=body, headers=business.auth, timeout=30
    ).raise_for_status()
    listener.wait_status(lambda s: s.get("warm", 0) >= devices, 60, "the warm-up message")


def collect(listener: Worker, expected: int, wait: float) -> dict[str, Any]:
    """What arrived within `wait` seconds of the last send; the rest is counted as missing."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and listener.status().get("received", 0) < expected:
        time.sleep(0.05)
    listener.stop()
    result = listener.result()
    result["missing"] = expected - len(result["latencies"])
    return result


def run(store: str, size: str, command: str) -> Report:
    seconds, wait = {"tiny": (0.2, 20.0), "quick": (3.0, 30.0), "full": (10.0, 120.0)}[size]
    with stack(store) as made:
        receiver = made.start_receiver()
        business = made.create_business()
        made.route_webhooks(business, receiver)
        server = made.start_tidings()
        [customer] = setup_customers(made, server, business, 1, companions=True, receiver=receiver)
        devices = len(customer["profiles"])
        listener = start_worker("devices", {"mode": "listen", "customers": [customer]})
        warm_up(server, business, customer["phone"], listener, devices)
        cpu_before = cpu_seconds(server.pid)
        sent = paced(server, business.messages_path, business.auth, customer["phone"], seconds)
        heard = collect(listener, sent["ok"] * devices, wait)
        cpu = cpu_seconds(server.pid) - cpu_before

        baseline = made.start_baseline()
        ws_url = baseline.url.replace("http://", "ws://") + "/ws"
        sockets = start_worker("sockets", {"mode": "latency", "url": ws_url, "count": devices})
        sockets.wait_status(lambda s: s.get("connected", 0) >= devices, 60, "baseline sockets")
        time.sleep(0.2)
        bare_cpu_before = cpu_seconds(baseline.pid)
        bare_sent = paced(baseline, business.messages_path, {}, customer["phone"], seconds)
        bare_heard = collect(sockets, bare_sent["ok"] * devices, wait)
        bare_cpu = cpu_seconds(baseline.pid) - bare_cpu_before
    ours, bare = percentiles_ms(heard["latencies"]), percentiles_ms(bare_heard["latencies"])
    report = Report(NAME, TITLE, command, store, size)
    report.row("messages sent (at messages/s)", f"{sent['ok']} ({RATE})", f"{bare_sent['ok']}")
    report.row("plaintexts timed (devices)", f"{ours['count']} ({devices})", f"{bare['count']}")
    for key in ("p50", "p99", "max"):
        report.row(f"send to device {key} (ms)", f"{ours[key]:.1f}", f"{bare[key]:.1f}")
    report.row(
        "accept p99 (ms)",
        f"{sent['latency_ms']['p99']:.1f}",
        f"{bare_sent['latency_ms']['p99']:.1f}",
    )
    report.row(
        f"not on the device {wait:.0f} s after the last send",
        str(heard["missing"]),
        str(bare_heard["missing"]),
    )
    report.row(
        "server CPU per message, first send to last plaintext (ms)",
        f"{cpu / max(sent['ok'], 1) * 1000:.2f}",
        f"{bare_cpu / max(bare_sent['ok'], 1) * 1000:.2f}",
    )
    report.row("device failures", str(len(heard["failures"])), "")
    report.target(
        "e2e",
        f"p99 < {TARGET_P99_MS:.0f} ms at {RATE} messages/s",
        f"{ours['p99']:.1f} ms of those delivered, {heard['missing']} not delivered in time",
        ours["p99"] < TARGET_P99_MS and heard["missing"] == 0,
    )
    report.figures = {
        "tidings": {
            "latency_ms": ours,
            "send": sent,
            "failures": heard["failures"],
            "cpu_seconds": cpu,
        },
        "baseline": {"latency_ms": bare, "send": bare_sent, "cpu_seconds": bare_cpu},
    }
    return report
