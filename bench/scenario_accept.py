"""Scenario 1, API accept rate: Cloud API text sends inside an open customer service window,
policy-checked and durably stored, at concurrency 32, against the bare baseline."""

from __future__ import annotations

from typing import Any

from bench.harness import Report, Service, run_worker, setup_customers, stack

NAME = "accept"
TITLE = "API accept rate at concurrency 32"
CONCURRENCY = 32
TARGET_RATIO = 0.60


def text_send(to: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"body": "Your order __SEQ__ has shipped"},
    }


def hammer(
    service: Service, path: str, headers: dict[str, str], bodies: list[Any], total: int, warmup: int
) -> dict[str, Any]:
    return run_worker(
        "loadgen",
        {
            "host": "127.0.0.1",
            "port": service.port,
            "path": path,
            "headers": headers,
            "bodies": bodies,
            "total": total,
            "warmup": warmup,
            "concurrency": CONCURRENCY,
        },
    )


def run(store: str, size: str, command: str) -> Report:
    total, warmup = {"tiny": (64, 0), "quick": (600, 64), "full": (10_000, 500)}[size]
    with stack(store) as made:
        receiver = made.start_receiver()
        business = made.create_business()
        made.route_webhooks(business, receiver)
        server = made.start_tidings()
        customers = setup_customers(made, server, business, 4, companions=False, receiver=receiver)
        bodies = [text_send(c["phone"]) for c in customers]
        baseline = made.start_baseline()
        bare = hammer(baseline, business.messages_path, {}, bodies, total, warmup)
        ours = hammer(server, business.messages_path, business.auth, bodies, total, warmup)
    ratio = ours["per_second"] / bare["per_second"]
    report = Report(NAME, TITLE, command, store, size)
    report.row("accepted messages/s", f"{ours['per_second']:,.0f}", f"{bare['per_second']:,.0f}")
    report.row("ratio to baseline", f"{ratio:.2f}", "1.00")
    for key in ("p50", "p99", "max"):
        report.row(
            f"latency {key} (ms)",
            f"{ours['latency_ms'][key]:.1f}",
            f"{bare['latency_ms'][key]:.1f}",
        )
    report.row(
        "non-2xx answers", str(ours["requests"] - ours["ok"]), str(bare["requests"] - bare["ok"])
    )
    report.row("requests (concurrency)", f"{total} ({CONCURRENCY})", f"{total} ({CONCURRENCY})")
    report.target(
        "accept",
        f"≥ {TARGET_RATIO:.0%} of the bare baseline",
        f"{ratio:.0%}",
        ratio >= TARGET_RATIO,
    )
    report.figures = {"tidings": ours, "baseline": bare, "ratio": ratio}
    return report
