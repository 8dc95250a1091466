"""Helpers for template-send tests: a provisioned shop whose templates are approved through the
real Graph API, a customer device, and arrange-only access to template state that no API sets
yet (paused, disabled: quality pausing is another part of the issue)."""

from __future__ import annotations

from typing import Any

import business_support
import httpx
import media_support
import pytest
from business_support import provision_shop, run_in_thread, serving
from sqlalchemy import func, select, update

from tidings.business.models import BusinessMessage
from tidings.runtime import build_runtime
from tidings.templates.models import MessageTemplate

BUSINESS = "+15550109999"
CUSTOMER = "+15550100001"

MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00\x00\x00\x08free" + b"\x00" * 64


receiver = business_support.receiver
links = media_support.links


@pytest.fixture
def shop(settings, clock, receiver):
    """A provisioned business (webhooks to `receiver`), its server, and a Graph client."""
    made = provision_shop(settings, receiver, BUSINESS)
    with serving(settings, clock) as server:
        graph = httpx.Client(
            base_url=server.url,
            headers={"Authorization": f"Bearer {made.access_token}"},
            timeout=30,
        )
        yield made, server, graph
        graph.close()


def create_approved(graph_client: httpx.Client, waba_id: str, body: dict[str, Any]) -> str:
    """Create a template through the Graph API; the automated review must approve it."""
    response = graph_client.post(f"/v23.0/{waba_id}/message_templates", json=body)
    assert response.status_code == 200, response.text
    created = response.json()
    assert created["status"] == "APPROVED", (body["name"], created)
    return str(created["id"])


def set_template_state(settings, template_id: str, **values: Any) -> None:
    """Arrange a template state (PAUSED, DISABLED, ...) directly in the database."""

    async def change() -> None:
        runtime = build_runtime(settings)
        try:
            async with runtime.database.unit_of_work() as uow:
                await uow.session.execute(
                    update(MessageTemplate)
                    .where(MessageTemplate.template_id == template_id)
                    .values(**values)
                )
        finally:
            await runtime.close()

    run_in_thread(change)


def stored_messages(settings) -> int:
    async def count() -> int:
        runtime = build_runtime(settings)
        try:
            async with runtime.database.read_only() as uow:
                return int(
                    await uow.session.scalar(select(func.count()).select_from(BusinessMessage)) or 0
                )
        finally:
            await runtime.close()

    result: int = run_in_thread(count)
    return result


def send_body(name: str, components: list[dict[str, Any]], language: str = "en_US") -> dict:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": CUSTOMER,
        "type": "template",
        "template": {"name": name, "language": {"code": language}, "components": components},
    }


def body_params(*values: Any) -> dict[str, Any]:
    return {
        "type": "body",
        "parameters": [{"type": "text", "text": v} if isinstance(v, str) else v for v in values],
    }


RECEIPT_IMAGE = {  # a media header: the send must give the image
    "name": "receipt_image",
    "language": "en_US",
    "category": "UTILITY",
    "components": [
        {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["4::aW1n"]}},
        {
            "type": "BODY",
            "text": "Your receipt for order {{1}} is shown above. Keep it for your records.",
            "example": {"body_text": [["A-1001"]]},
        },
    ],
}
TABLE_BOOKING = {  # named parameters
    "name": "table_booking",
    "language": "en_US",
    "category": "UTILITY",
    "parameter_format": "NAMED",
    "components": [
        {
            "type": "BODY",
            "text": "Hello {{first_name}}, your table for {{party_size}} is booked at"
            " our downtown restaurant tonight.",
            "example": {
                "body_text_named_params": [
                    {"param_name": "first_name", "example": "Ann"},
                    {"param_name": "party_size", "example": "4"},
                ]
            },
        }
    ],
}
ORDER_UPDATE = {
    "name": "order_update",
    "language": "en_US",
    "category": "UTILITY",
    "components": [
        {
            "type": "HEADER",
            "format": "TEXT",
            "text": "Order {{1}} update",
            "example": {"header_text": ["A-1001"]},
        },
        {
            "type": "BODY",
            "text": "Hi {{1}}, we charged {{2}} for your order, which ships on {{3}}."
            " Reply below if anything looks wrong.",
            "example": {"body_text": [["Ann", "$19.99", "August 5"]]},
        },
        {"type": "FOOTER", "text": "Acme Shop customer care"},
        {
            "type": "BUTTONS",
            "buttons": [
                {"type": "QUICK_REPLY", "text": "Looks right"},
                {"type": "QUICK_REPLY", "text": "Change it"},
                {
                    "type": "URL",
                    "text": "Track",
                    "url": "https://shop.example/track/{{1}}",
                    "example": ["https://shop.example/track/A-1001"],
                },
                {"type": "PHONE_NUMBER", "text": "Call us", "phone_number": "+15550100002"},
            ],
        },
    ],
}
