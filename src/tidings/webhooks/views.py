"""What the webhook service hands out: subscribed apps, events, delivery and health summaries.

Each has `to_json()` (or `to_graph()`) with the wire shape the routes return.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class SubscribedApp:
    app_id: str
    name: str
    link: str | None
    override_callback_uri: str | None

    def to_graph(self) -> dict[str, Any]:
        """One item of `GET /{waba_id}/subscribed_apps`."""
        item: dict[str, Any] = {
            "whatsapp_business_api_data": {
                "id": self.app_id,
                "link": self.link or "",
                "name": self.name,
            }
        }
        if self.override_callback_uri:
            item["override_callback_uri"] = self.override_callback_uri
        return item


@dataclass(frozen=True)
class DeliverySummary:
    target_url: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "target_url": self.target_url,
            "status": self.status,
            "attempts": self.attempts,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "delivered_at": _iso(self.delivered_at),
        }


@dataclass(frozen=True)
class EventView:
    id: str
    position: int
    field: str
    phone_number_id: str | None
    created_at: datetime
    payload: dict[str, Any]  # the change's `value`, decrypted
    deliveries: list[DeliverySummary]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "position": self.position,
            "field": self.field,
            "phone_number_id": self.phone_number_id,
            "created_at": _iso(self.created_at),
            "payload": self.payload,
            "deliveries": [d.to_json() for d in self.deliveries],
        }


@dataclass(frozen=True)
class TargetHealth:
    target_url: str
    pending: int
    delivered: int
    dead: int
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_failure_code: int | None
    last_failure_error: str | None
    consecutive_failures: int
    p50_latency_ms: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "target_url": self.target_url,
            "pending": self.pending,
            "delivered": self.delivered,
            "dead": self.dead,
            "last_success_at": _iso(self.last_success_at),
            "last_failure_at": _iso(self.last_failure_at),
            "last_failure_code": self.last_failure_code,
            "last_failure_error": self.last_failure_error,
            "consecutive_failures": self.consecutive_failures,
            "p50_latency_ms": self.p50_latency_ms,
        }


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None
