"""Scenario 5, inbound: customers' messages decrypted by the business platform and posted as
`messages` webhooks, per second. The baseline is the ceiling of in-order delivery to one
endpoint: the same receiver taking plain POSTs of a webhook body one at a time."""

from __future__ import annotations

from typing import Any

from bench.harness import (
    Report,
    receiver_stats,
    run_worker,
    setup_customers,
    stack,
    wait_for_receiver,
)

NAME = "inbound"
TITLE = "customer messages decrypted and posted as webhooks"

WEBHOOK_BODY: dict[str, Any] = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "1",
            "changes": [
                {
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {"display_phone_number": "15550109999", "phone_number_id": "1"},
                        "contacts": [{"profile": {"name": ""}, "wa_id": "4915112000000"}],
                        "messages": [
                            {
                                "from": "4915112000000",
                                "id": "wamid.__SEQ__",
                                "timestamp": "1764000000",
                                "type": "text",
                                "text": {"body": "inbound __SEQ__"},
                            }
                        ],
                    },
                }
            ],
        }
    ],
}


def run(store: str, size: str, command: str) -> Report:
    customers_n, each = {"tiny": (2, 3), "quick": (4, 25), "full": (20, 100)}[size]
    total = customers_n * each
    with stack(store) as made:
        receiver = made.start_receiver()
        business = made.create_business()
        made.route_webhooks(business, receiver)
        server = made.start_tidings()
        customers = setup_customers(
            made, server, business, customers_n, companions=False, receiver=receiver
        )
        before = receiver_stats(receiver)["messages"]
        sent = run_worker(
            "devices",
            {"mode": "send", "customers": customers, "messages": each, "business": business.phone},
        )
        wait_for_receiver(receiver, lambda s: s["messages"] >= before + total, 600, "inbound")
        stats = receiver_stats(receiver)
        elapsed = stats["last_message_at"] - sent["began_at"]
        bare = run_worker(
            "loadgen",
            {
                "host": "127.0.0.1",
                "port": receiver.port,
                "path": "/hook",
                "bodies": [WEBHOOK_BODY],
                "total": min(total, 1000),
                "concurrency": 1,
            },
        )
    rate = total / elapsed
    report = Report(NAME, TITLE, command, store, size)
    report.row("messages (customers)", f"{total} ({customers_n})", f"{min(total, 1000)} POSTs")
    report.row("webhooks posted per second", f"{rate:,.0f}", f"{bare['per_second']:,.0f}")
    report.row("ratio to baseline", f"{rate / bare['per_second']:.4f}", "1.00")
    report.row("customers' send rate (messages/s)", f"{sent['sent'] / sent['elapsed']:,.0f}", "")
    report.figures = {
        "tidings": {"per_second": rate, "elapsed": elapsed, "send": sent},
        "baseline": bare,
    }
    return report
