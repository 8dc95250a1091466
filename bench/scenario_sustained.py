"""Scenario 3, sustained top tier: 1,000 messages/s for 60 s to 500 customers with two devices
each (a primary that reads and a companion), with every status webhook (sent, delivered, read)
delivered to the receiver the harness runs. Reports the backlog once a second (accepted sends
whose statuses have not arrived yet) and the server's CPU per message. The baseline is the bare
app taking the same offered load.

The backlog holds when, at the end of the load, it is at most two seconds of traffic: the
pipeline keeps up instead of queueing. Device processes share the machine's two cores with the
server, so their decryption competes with what is measured."""

from __future__ import annotations

import time
from typing import Any

from bench.harness import (
    Report,
    Service,
    Worker,
    cpu_seconds,
    receiver_stats,
    run_worker,
    setup_customers,
    stack,
    start_worker,
    wait_for_receiver,
)

NAME = "sustained"
TITLE = "top tier: 1,000 messages/s for 60 s, 500 customers x 2 devices"
CONCURRENCY = 64
LISTENER_PROCESSES = 2


def body(to: str, text: str) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": text}}


def offered(
    service: Service,
    path: str,
    headers: dict[str, str],
    bodies: list[Any],
    rate: float,
    seconds: float,
) -> Worker:
    return start_worker(
        "loadgen",
        {
            "host": "127.0.0.1",
            "port": service.port,
            "path": path,
            "headers": headers,
            "bodies": bodies,
            "rate": rate,
            "duration": seconds,
            "concurrency": CONCURRENCY,
        },
    )


def statuses(receiver: Service) -> dict[str, int]:
    counts: dict[str, int] = receiver_stats(receiver)["statuses"]
    return counts


def run(store: str, size: str, command: str) -> Report:
    customers_n, rate, seconds, drain_limit = {
        "tiny": (2, 20, 1.0, 15.0),
        "quick": (10, 100, 5.0, 30.0),
        "full": (500, 1000, 60.0, 180.0),
    }[size]
    with stack(store) as made:
        receiver = made.start_receiver()
        business = made.create_business()
        made.route_webhooks(business, receiver)
        server = made.start_tidings()
        customers = setup_customers(
            made, server, business, customers_n, companions=True, receiver=receiver
        )
        devices = sum(len(c["profiles"]) for c in customers)
        groups = [customers[n::LISTENER_PROCESSES] for n in range(LISTENER_PROCESSES)]
        listeners = [
            start_worker("devices", {"mode": "listen", "customers": g, "reads": True})
            for g in groups
            if g
        ]
        # Warm-up: one message to every customer starts the Olm sessions with every device.
        run_worker(
            "loadgen",
            {
                "host": "127.0.0.1",
                "port": server.port,
                "path": business.messages_path,
                "headers": business.auth,
                "bodies": [body(c["phone"], "warmup") for c in customers],
                "total": customers_n,
                "concurrency": 8,
            },
        )
        # Every warm-up message sent, and read on nearly every customer's primary: a device's
        # read receipt lost to a timeout (a device failure, as during the load) must not
        # hold the scenario up for good.
        wait_for_receiver(
            receiver,
            lambda s: (
                s["statuses"].get("sent", 0) + s["statuses"].get("failed", 0) >= customers_n
                and s["statuses"].get("read", 0) + s["statuses"].get("failed", 0)
                >= customers_n - customers_n // 100
            ),
            600,
            "warm-up reads",
        )
        before = statuses(receiver)
        cpu_before = cpu_seconds(server.pid)
        bodies = [body(c["phone"], "bench __SEQ__ __TS__") for c in customers]
        load = offered(server, business.messages_path, business.auth, bodies, rate, seconds)
        samples: list[dict[str, Any]] = []
        accepted = 0
        began = time.monotonic()
        finished_at: float | None = None
        while True:
            time.sleep(0.25 if size == "tiny" else 1.0)
            # Refused sends wait for nothing. The count only grows: a status without it
            # (none written yet) must not read as a backlog gone.
            accepted = max(accepted, load.status().get("ok", 0))
            now = statuses(receiver)
            sample = {"t": round(time.monotonic() - began, 1), "accepted": accepted}
            for kind in ("sent", "delivered", "read"):
                sample[f"not_{kind}"] = accepted - (now.get(kind, 0) - before.get(kind, 0))
            samples.append(sample)
            if finished_at is None and load.process.poll() is not None:
                finished_at = time.monotonic() - began
                at_end = dict(sample)
            if finished_at is not None and (
                sample["not_read"] <= 0 or time.monotonic() - began > finished_at + drain_limit
            ):
                break
        drained = time.monotonic() - began - finished_at
        sent = load.result()
        cpu = cpu_seconds(server.pid) - cpu_before
        # Where messages stopped, by the server's own record: a run that ends with reads
        # missing says whether the platform recorded them (a webhook lost) or not.
        recorded = made.outbound_statuses()
        receiver_errors = receiver_stats(receiver)["errors"]
        for listener in listeners:
            listener.stop()
        heard = [listener.result() for listener in listeners]

        baseline = made.start_baseline()
        bare_cpu_before = cpu_seconds(baseline.pid)
        bare = offered(baseline, business.messages_path, {}, bodies, rate, seconds).result()
        bare_cpu = cpu_seconds(baseline.pid) - bare_cpu_before
    ok = sent["ok"]
    limit = 2 * rate
    held = sent["per_second"] >= 0.95 * rate and at_end["not_read"] <= limit
    report = Report(NAME, TITLE, command, store, size)
    report.row("customers x devices", f"{customers_n} x {devices // customers_n}", "")
    report.row("offered rate; seconds", f"{rate}; {seconds:.0f}", f"{rate}; {seconds:.0f}")
    report.row("accepted messages/s", f"{sent['per_second']:,.0f}", f"{bare['per_second']:,.0f}")
    report.row(
        "refused sends (130429: backlog at its bound)",
        f"{sent['requests'] - ok:,}",
        f"{bare['requests'] - bare['ok']:,}",
    )
    report.row(
        "answer p99 (ms)", f"{sent['latency_ms']['p99']:.0f}", f"{bare['latency_ms']['p99']:.0f}"
    )
    for kind in ("sent", "delivered", "read"):
        report.row(f"backlog at end of load: not yet {kind}", str(at_end[f"not_{kind}"]), "")
    report.row("drain time after the load (s)", f"{drained:.1f}", "")
    report.row(
        "server CPU per message (ms)",
        f"{cpu / max(ok, 1) * 1000:.2f}",
        f"{bare_cpu / max(bare['ok'], 1) * 1000:.2f}",
    )
    report.row("device failures", str(sum(len(h["failures"]) for h in heard)), "")
    report.row("failed statuses", str(sum(receiver_errors.values())), "")
    report.row(
        "outbound messages not read, by the server's record",
        str(sum(n for status, n in recorded["by_status"].items() if status != "read")),
        "",
    )
    report.target(
        "sustained",
        f"{rate} messages/s for {seconds:.0f} s, backlog at the end ≤ 2 s of traffic ({limit})",
        f"{sent['per_second']:,.0f}/s accepted, backlog {at_end['not_read']}",
        held,
    )
    report.figures = {
        "tidings": {"send": sent, "cpu_seconds": cpu, "backlog": samples, "drain_s": drained},
        "baseline": {"send": bare, "cpu_seconds": bare_cpu},
        "device_failures": [f for h in heard for f in h["failures"]][:20],
        "failed_statuses": receiver_errors,
        "server_outbound_statuses": recorded,
    }
    return report
