"""The policy on real template sends over HTTP: a customer types STOP in Spanish and the next
marketing template fails with 131050 after the business got the `user_preferences` webhook;
a customer blocks the business from the client; the marketing cap across businesses."""

from __future__ import annotations

import asyncio
from typing import Any

import template_send_support
from business_support import open_window
from template_send_support import BUSINESS, CUSTOMER, create_approved, send_body
from test_business_api import collect, customer_device, messages

# Fixtures shared with the template-send tests.
receiver, shop = template_send_support.receiver, template_send_support.shop

SUMMER_SALE = {
    "name": "summer_sale",
    "language": "en_US",
    "category": "MARKETING",
    "components": [
        {
            "type": "BODY",
            "text": "Hi {{1}}, our summer sale starts today: take an extra discount on every"
            " pair of shoes in the store.",
            "example": {"body_text": [["Ann"]]},
        }
    ],
}
SALE = send_body("summer_sale", [{"type": "body", "parameters": [{"type": "text", "text": "Jo"}]}])
SHIPPED = {
    "name": "parcel_shipped",
    "language": "en_US",
    "category": "UTILITY",
    "components": [
        {
            "type": "BODY",
            "text": "Your parcel {{1}} has left our warehouse and arrives tomorrow.",
            "example": {"body_text": [["A-1001"]]},
        }
    ],
}
PARCEL = send_body(
    "parcel_shipped", [{"type": "body", "parameters": [{"type": "text", "text": "A-7"}]}]
)


def status_of(receiver, wamid: str, status: str = "failed") -> dict[str, Any]:
    receiver.wait_for(
        lambda _p: any(s["id"] == wamid and s["status"] == status for s in receiver.statuses())
    )
    return next(s for s in receiver.statuses() if s["id"] == wamid and s["status"] == status)


def preferences(receiver) -> list[dict[str, Any]]:
    return [item for value in receiver.changes() for item in value.get("user_preferences", [])]


async def send(graph, made, body: dict[str, Any]) -> str:
    response = await asyncio.to_thread(
        graph.post, f"/v23.0/{made.phone_number_id}/messages", json=body
    )
    assert response.status_code == 200, response.text
    return str(response.json()["messages"][0]["id"])


async def test_stop_in_spanish_then_the_next_marketing_template_fails_with_131050(
    shop, settings, clock, receiver, tmp_path
) -> None:
    made, server, graph = shop
    create_approved(graph, made.waba_id, SUMMER_SALE)
    create_approved(graph, made.waba_id, SHIPPED)
    customer = await customer_device(settings, clock, server.url, tmp_path, window=False)
    try:
        first = await send(graph, made, SALE)
        [got] = messages(await collect(customer, lambda ev: messages(ev)))
        assert got.content["template"]["name"] == "summer_sale"
        await open_window(customer, BUSINESS, settings, clock, text="Baja")
        # The business hears of it, and the customer gets a confirmation in Spanish.
        receiver.wait_for(lambda _p: preferences(receiver))
        [item] = preferences(receiver)
        assert item["wa_id"] == CUSTOMER.lstrip("+") and item["value"] == "stop"
        assert item["category"] == "marketing_messages"
        [confirmation] = messages(await collect(customer, lambda ev: messages(ev)))
        assert confirmation.text.startswith("Ya no recibirás mensajes promocionales de Acme")
        assert "ALTA" in confirmation.text
        clock.advance(days=2)
        refused = await send(graph, made, SALE)  # accepted, then...
        [error] = status_of(receiver, refused)["errors"]
        assert error["code"] == 131050  # ...failed, as Meta reports it
        assert error["title"].startswith("Unable to deliver the message.")
        # Utility templates still go; the customer can resume with the keyword it was told.
        utility = await send(graph, made, PARCEL)
        status_of(receiver, utility, "sent")
        await open_window(customer, BUSINESS, settings, clock, text="alta")
        receiver.wait_for(lambda _p: len(preferences(receiver)) == 2)
        assert preferences(receiver)[1]["value"] == "resume"
        again = await send(graph, made, SALE)
        status_of(receiver, again, "sent")
        assert status_of(receiver, first, "sent")
    finally:
        await customer.close()


async def test_a_customer_who_blocks_the_business_gets_nothing_from_it(
    shop, settings, clock, receiver, tmp_path
) -> None:
    made, server, graph = shop
    create_approved(graph, made.waba_id, SHIPPED)
    customer = await customer_device(settings, clock, server.url, tmp_path)
    try:
        await customer.send_content(
            BUSINESS, {"type": "block", "block": {"blocked": True, "report": True}}
        )
        await open_window(customer, BUSINESS, settings, clock, text="why am I getting this?")
        for body in (PARCEL, {**PARCEL, "type": "text", "text": {"body": "hi"}}):
            body = {k: v for k, v in body.items() if k != "template" or body["type"] == "template"}
            wamid = await send(graph, made, body)
            [error] = status_of(receiver, wamid)["errors"]
            assert error["code"] == 131026 and error["title"] == "Message undeliverable"
        # The block control itself is never forwarded to the business as a message.
        assert all(m.get("type") != "unsupported" for m in receiver.messages())
        assert [m["type"] for m in receiver.messages()] == ["text", "text"]
    finally:
        await customer.close()


async def test_a_block_in_the_network_alone_still_ends_in_131026(
    shop, settings, clock, receiver, tmp_path
) -> None:
    made, server, graph = shop
    create_approved(graph, made.waba_id, SHIPPED)
    customer = await customer_device(settings, clock, server.url, tmp_path, window=False)
    try:
        first = await send(graph, made, PARCEL)
        status_of(receiver, first, "sent")
        # A client that blocks in the network without telling the business platform: the
        # policy lets the send through, and the network refuses to file it.
        assert await customer.block(BUSINESS) == [BUSINESS]
        refused = await send(graph, made, PARCEL)
        [error] = status_of(receiver, refused)["errors"]
        assert error["code"] == 131026
        # Marking the customer's earlier message read still works (the typing indicator is
        # refused by the network and dropped quietly).
        await open_window(customer, BUSINESS, settings, clock, text="hello?")
        await customer.block(BUSINESS)
        receiver.wait_for(lambda _p: receiver.messages())
        [hello] = receiver.messages()
        read = await asyncio.to_thread(
            graph.post,
            f"/v23.0/{made.phone_number_id}/messages",
            json={
                "messaging_product": "whatsapp",
                "status": "read",
                "message_id": hello["id"],
                "typing_indicator": {"type": "text"},
            },
        )
        assert read.json() == {"success": True}
        await customer.unblock(BUSINESS)
        again = await send(graph, made, PARCEL)
        status_of(receiver, again, "sent")
        got = messages(await collect(customer, lambda ev: len(messages(ev)) >= 2))
        assert [m.content["template"]["name"] for m in got] == ["parcel_shipped"] * 2
    finally:
        await customer.close()


async def test_block_business_tells_the_platform_and_the_network(
    shop, settings, clock, receiver, tmp_path
) -> None:
    made, server, graph = shop
    create_approved(graph, made.waba_id, SHIPPED)
    customer = await customer_device(settings, clock, server.url, tmp_path)
    try:
        await customer.block_business(BUSINESS, report=True, reason="spam")
        assert await customer.blocked() == [BUSINESS]
        # The platform refuses before sending (its policy knows, as preflight shows).
        await _wait_blocked(graph, made)
        refused = await send(graph, made, PARCEL)
        assert status_of(receiver, refused)["errors"][0]["code"] == 131026
        await customer.unblock_business(BUSINESS)
        assert await customer.blocked() == []
    finally:
        await customer.close()


async def _wait_blocked(graph, made, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        answer = await asyncio.to_thread(
            graph.get,
            f"/v23.0/{made.phone_number_id}/preflight",
            params={"to": CUSTOMER, "template": "parcel_shipped"},
        )
        if any(r["code"] == 131026 for r in answer.json()["reasons"]):
            return
        if loop.time() > deadline:
            raise AssertionError("the block control was not applied in time")
        await asyncio.sleep(0.05)
