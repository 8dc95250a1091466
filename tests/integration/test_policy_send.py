"""The messaging policy end to end over HTTP, with a real customer device and an injected
clock: the customer service window, STOP keywords, blocks, the marketing cap."""

from __future__ import annotations

from typing import Any

import business_support
import httpx
import pytest
from business_support import Receiver, open_window, provision_shop, serving
from test_business_api import (
    BUSINESS,
    CUSTOMER,
    STRANGER,
    collect,
    customer_device,
    messages,
)

from tidings.business.policy_gate import TemplateUse
from tidings.policy.categories import Category
from tidings.runtime import build_runtime

receiver = business_support.receiver


@pytest.fixture
def shop(settings, clock, receiver):
    made = provision_shop(settings, receiver, BUSINESS)
    # A short poll: sends made through another runtime (no shared bus) are found quickly.
    settings = settings.model_copy(
        update={"business": settings.business.model_copy(update={"worker_poll_seconds": 0.2})}
    )
    with serving(settings, clock) as server:
        yield made, server


def text(body: str, to: str = CUSTOMER) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": body}}


def failed_status(receiver: Receiver, wamid: str) -> dict[str, Any]:
    receiver.wait_for(lambda _posts: any(s["id"] == wamid for s in receiver.statuses()))
    [status] = [s for s in receiver.statuses() if s["id"] == wamid]
    assert status["status"] == "failed", status
    return status


async def test_free_form_after_the_window_fails_with_131047(
    shop, settings, clock, receiver, tmp_path
) -> None:
    made, server = shop
    customer = await customer_device(settings, clock, server.url, tmp_path)  # writes first
    url = f"/v23.0/{made.phone_number_id}/messages"
    try:
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {made.access_token}"}
        ) as api:
            clock.advance(hours=23, minutes=59, seconds=59)
            inside = await api.post(url, json=text("last call"))
            assert inside.status_code == 200
            [got] = messages(await collect(customer, lambda ev: messages(ev)))
            assert got.text == "last call"
            clock.advance(seconds=1)  # 24:00:00 after the customer's message
            outside = await api.post(url, json=text("too late"))
            assert outside.status_code == 200  # accepted, as Meta does...
            wamid = outside.json()["messages"][0]["id"]
            status = failed_status(receiver, wamid)  # ...then reported failed
            [error] = status["errors"]
            assert error["code"] == 131047 and error["title"] == "Re-engagement message"
            assert "24 hours" in error["error_data"]["details"]
            # The customer writes again: the window reopens, and what arrives next is the new
            # message ("too late" was never sent).
            await open_window(customer, BUSINESS, settings, clock)
            assert (await api.post(url, json=text("welcome back"))).status_code == 200
            got = messages(await collect(customer, lambda ev: messages(ev)))
            assert [m.text for m in got] == ["welcome back"]
    finally:
        await customer.close()


async def test_a_template_to_a_number_off_the_network_fails_with_131026(
    shop, clock, receiver
) -> None:
    made, server = shop
    utility = TemplateUse("1001", "order_update", "en_US", Category.UTILITY, "APPROVED", 1)
    local = build_runtime(server.settings, clock=clock)
    try:
        phone = await local.businesses.phone_by_number_id(made.phone_number_id)
        wamid = await local.business_messaging.accept(
            phone,
            STRANGER,
            "template",
            {"name": "order_update", "language": "en_US", "body": {"text": "Shipped"}},
            template=utility,
        )
    finally:
        await local.close()
    # The policy let it through (no window needed for a template); the server's worker finds
    # it on its next poll and the network has no such customer.
    [error] = failed_status(receiver, wamid)["errors"]
    assert error["code"] == 131026


async def test_a_conversation_from_a_qr_code_is_free_for_72_hours(
    shop, settings, clock, receiver, tmp_path
) -> None:
    made, server = shop
    customer = await customer_device(settings, clock, server.url, tmp_path, window=False)
    try:
        await customer.send_content(
            BUSINESS,
            {
                "type": "text",
                "text": {"body": "Hi! I scanned the code in your window"},
                "referral": {"source_type": "qr", "source_id": "shop-window-3"},
            },
        )
        receiver.wait_for(lambda _posts: receiver.messages())
        [inbound] = receiver.messages()
        assert inbound["referral"] == {"source_type": "qr", "source_id": "shop-window-3"}
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {made.access_token}"}
        ) as api:
            url = f"/v23.0/{made.phone_number_id}/messages"
            answer = await api.post(url, json=text("Welcome! How can we help?"))
            wamid = answer.json()["messages"][0]["id"]
        receiver.wait_for(
            lambda _posts: any(
                s["id"] == wamid and s["status"] == "sent" for s in receiver.statuses()
            )
        )
        [sent] = [s for s in receiver.statuses() if s["id"] == wamid and s["status"] == "sent"]
        assert sent["pricing"]["type"] == "free_entry_point"
        assert sent["pricing"]["category"] == "referral_conversion"
        assert sent["pricing"]["billable"] is False
    finally:
        await customer.close()
