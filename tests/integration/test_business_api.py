"""The Business API end to end: pywa (pointed at our server) talks to a customer whose device
runs the SDK; webhooks go to a receiver the test runs and are parsed by pywa itself."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Any

import business_support
import httpx
import pytest
from business_support import (
    open_window,
    provision_shop,
    pywa_client,
    run_in_thread,
    serving,
)
from pywa import handlers

from conftest import issue_invite
from tidings.cli.business import _create
from tidings.sdk import DeviceClient, IncomingMessage, ReceiptEvent, TypingEvent

BUSINESS = "+15550109999"
CUSTOMER = "+15550100001"
STRANGER = "+15550100077"


receiver = business_support.receiver


@pytest.fixture
def shop(settings, clock, receiver, tmp_path):
    """A provisioned business with its webhook set, then the server started."""
    made = provision_shop(settings, receiver, BUSINESS)
    with serving(settings, clock) as server:
        yield made, server


async def customer_device(
    settings, clock, server_url: str, tmp_path, phone: str = CUSTOMER, window: bool = True
) -> DeviceClient:
    """A registered customer who (unless `window` is False) has written to BUSINESS, so its
    customer service window is open and free-form messages may reach them."""
    code = await asyncio.to_thread(issue_invite, settings, phone, clock)
    client = await DeviceClient.register(server_url, phone, code, tmp_path / phone.lstrip("+"))
    if window:
        await open_window(client, BUSINESS, settings, clock)
    return client


async def collect(client: DeviceClient, want, timeout: float = 20.0) -> list[Any]:
    """Receive until `want(events)` holds."""
    events: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not want(events):
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(f"customer did not receive in time: {events}")
        events.extend(await client.receive_once(min(remaining, 5)))
    return events


def messages(events: list[Any]) -> list[IncomingMessage]:
    return [e for e in events if isinstance(e, IncomingMessage)]


async def test_text_round_trip_with_statuses_and_signed_webhooks(
    shop, settings, clock, receiver, tmp_path
) -> None:
    made, server = shop
    customer = await customer_device(settings, clock, server.url, tmp_path)
    wa = pywa_client(made, server.url)
    parsed: list[Any] = []
    wa.add_handlers(
        handlers.MessageHandler(lambda _c, m: parsed.append(m)),
        handlers.MessageStatusHandler(lambda _c, s: parsed.append(s)),
    )
    try:
        sent = await asyncio.to_thread(wa.send_message, to=CUSTOMER, text="Your order shipped ✓")
        assert sent.id.startswith("wamid.")
        [got] = messages(await collect(customer, lambda ev: messages(ev)))
        assert got.sender == BUSINESS and got.text == "Your order shipped ✓"
        assert (
            got.content
            == {"type": "text", "text": {"body": "Your order shipped ✓", "preview_url": False}}
            or got.content["text"]["body"] == "Your order shipped ✓"
        )
        await customer.mark_read(BUSINESS, [got.id])
        receiver.wait_for(
            lambda posts: {"sent", "delivered", "read"} <= {s["status"] for s in _statuses(posts)}
        )
        assert [s["status"] for s in receiver.statuses() if s["id"] == sent.id] == [
            "sent",
            "delivered",
            "read",
        ]
        # Every POST is signed over the exact bytes with the app secret, non-ASCII escaped.
        for post in receiver.posts:
            expected = (
                "sha256="
                + hmac.new(made.app_secret.encode(), post.body, hashlib.sha256).hexdigest()
            )
            assert post.signature == expected
            assert post.body.isascii()
            assert wa.webhook_update_validator(post.body, post.signature) is None
        # The customer answers; pywa parses the signed webhook as a Message.
        await customer.send_text(BUSINESS, "Thanks! é")
        receiver.wait_for(
            lambda posts: any(
                m.get("text", {}).get("body") == "Thanks! é" for m in _messages(posts)
            )
        )
        for post in receiver.posts:
            wa.webhook_update_handler(post.body)
        texts = [p for p in parsed if getattr(p, "text", None) == "Thanks! é"]
        assert texts and texts[0].from_user.wa_id == CUSTOMER.lstrip("+")
        statuses = [p for p in parsed if p.__class__.__name__ == "MessageStatus"]
        assert [s.status.value for s in statuses if s.id == sent.id] == [
            "sent",
            "delivered",
            "read",
        ]
    finally:
        await customer.close()


def _statuses(posts) -> list[dict[str, Any]]:
    return [
        s
        for p in posts
        for e in p.json["entry"]
        for c in e["changes"]
        for s in c["value"].get("statuses", [])
    ]


def _messages(posts) -> list[dict[str, Any]]:
    return [
        m
        for p in posts
        for e in p.json["entry"]
        for c in e["changes"]
        for m in c["value"].get("messages", [])
    ]


INTERACTIVE_BUTTONS = {
    "type": "button",
    "body": {"text": "Pick a delivery slot"},
    "action": {
        "buttons": [
            {"type": "reply", "reply": {"id": "slot-am", "title": "Morning"}},
            {"type": "reply", "reply": {"id": "slot-pm", "title": "Afternoon"}},
        ]
    },
}
INTERACTIVE_LIST = {
    "type": "list",
    "header": {"type": "text", "text": "Menu"},
    "body": {"text": "What can we help with?"},
    "footer": {"text": "Acme"},
    "action": {
        "button": "Options",
        "sections": [
            {
                "title": "Orders",
                "rows": [{"id": "track", "title": "Track order", "description": "Where is it?"}],
            },
            {"title": "Other", "rows": [{"id": "agent", "title": "Talk to us"}]},
        ],
    },
}
KINDS: list[tuple[str, dict[str, Any]]] = [
    ("text", {"body": "See https://acme.example/o/1", "preview_url": True}),
    ("location", {"latitude": 52.52, "longitude": 13.405, "name": "Acme HQ", "address": "Berlin"}),
    (
        "contacts",
        [
            {
                "name": {"formatted_name": "Acme Support", "first_name": "Acme"},
                "phones": [{"phone": "+15550109999", "type": "WORK"}],
            }
        ],
    ),
    ("interactive", INTERACTIVE_BUTTONS),
    ("interactive", INTERACTIVE_LIST),
    (
        "interactive",
        {
            "type": "cta_url",
            "body": {"text": "Track it"},
            "action": {
                "name": "cta_url",
                "parameters": {"display_text": "Open", "url": "https://acme.example/t/1"},
            },
        },
    ),
    (
        "interactive",
        {
            "type": "location_request_message",
            "body": {"text": "Where should we deliver?"},
            "action": {"name": "send_location"},
        },
    ),
]


async def test_every_message_kind_reaches_the_customer_exactly(
    shop, settings, clock, tmp_path
) -> None:
    made, server = shop
    customer = await customer_device(settings, clock, server.url, tmp_path)
    headers = {"Authorization": f"Bearer {made.access_token}"}
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=headers) as api:
            sent_ids = []
            for kind, payload in KINDS:
                response = await api.post(
                    f"/v21.0/{made.phone_number_id}/messages",
                    json={
                        "messaging_product": "whatsapp",
                        "to": "+1 (555) 010-0001",
                        "type": kind,
                        kind: payload,
                    },
                )
                assert response.status_code == 200, response.text
                body = response.json()
                assert body["contacts"] == [
                    {"input": "+1 (555) 010-0001", "wa_id": CUSTOMER.lstrip("+")}
                ]
                sent_ids.append(body["messages"][0]["id"])
            got = messages(await collect(customer, lambda ev: len(messages(ev)) >= len(KINDS)))
            for (kind, payload), message in zip(KINDS, got, strict=True):
                assert message.content["type"] == kind
                delivered = message.content[kind]
                if isinstance(payload, dict):
                    for key, value in payload.items():
                        assert delivered[key] == value, (kind, key)
                else:
                    assert (
                        delivered[0]["name"]["formatted_name"]
                        == payload[0]["name"]["formatted_name"]
                    )
            # A reaction and a reply quote an earlier message by its wamid.
            target = sent_ids[0]
            reply = await api.post(
                f"/{made.phone_number_id}/messages",
                json={
                    "messaging_product": "whatsapp",
                    "to": CUSTOMER,
                    "type": "text",
                    "text": {"body": "about that"},
                    "context": {"message_id": target},
                },
            )
            assert reply.status_code == 200, reply.text
            [quoted] = messages(await collect(customer, lambda ev: messages(ev)))
            assert quoted.content["context"]["message_id"] == got[0].id
    finally:
        await customer.close()


async def test_customer_replies_arrive_as_cloud_api_webhooks(
    shop, settings, clock, receiver, tmp_path
) -> None:
    made, server = shop
    customer = await customer_device(settings, clock, server.url, tmp_path)
    wa = pywa_client(made, server.url)
    taps: list[Any] = []
    wa.add_handlers(
        handlers.CallbackButtonHandler(lambda _c, b: taps.append(("button", b.data, b.title))),
        handlers.CallbackSelectionHandler(lambda _c, s: taps.append(("list", s.data, s.title))),
        handlers.MessageHandler(
            lambda _c, m: taps.append(
                ("message", m.type.value, m.location.latitude if m.location else None)
            )
        ),
    )
    try:
        headers = {"Authorization": f"Bearer {made.access_token}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers) as api:
            for payload in (INTERACTIVE_BUTTONS, INTERACTIVE_LIST):
                sent = await api.post(
                    f"/v23.0/{made.phone_number_id}/messages",
                    json={
                        "messaging_product": "whatsapp",
                        "to": CUSTOMER,
                        "type": "interactive",
                        "interactive": payload,
                    },
                )
                assert sent.status_code == 200
        button_msg, list_msg = messages(await collect(customer, lambda ev: len(messages(ev)) >= 2))
        await customer.send_content(
            BUSINESS,
            {
                "type": "interactive",
                "interactive": {
                    "type": "button_reply",
                    "button_reply": {"id": "slot-pm", "title": "Afternoon"},
                },
                "context": {"message_id": button_msg.id},
            },
        )
        await customer.send_content(
            BUSINESS,
            {
                "type": "interactive",
                "interactive": {
                    "type": "list_reply",
                    "list_reply": {
                        "id": "track",
                        "title": "Track order",
                        "description": "Where is it?",
                    },
                },
                "context": {"message_id": list_msg.id},
            },
        )
        await customer.send_content(
            BUSINESS,
            {
                "type": "location",
                "location": {"latitude": 48.85, "longitude": 2.35, "name": "Home"},
            },
        )
        receiver.wait_for(lambda posts: len(_messages(posts)) >= 4)
        # Webhooks are delivered concurrently (as Meta's are), so order is not asserted. The
        # text is the customer's first message, which opened the service window.
        inbound = _messages(receiver.posts)
        assert sorted(m["type"] for m in inbound) == [
            "interactive",
            "interactive",
            "location",
            "text",
        ]
        [tapped] = [m for m in inbound if m.get("interactive", {}).get("type") == "button_reply"]
        assert tapped["interactive"]["button_reply"] == {"id": "slot-pm", "title": "Afternoon"}
        assert tapped["context"]["id"].startswith("wamid.")
        for post in receiver.posts:
            value = post.json["entry"][0]["changes"][0]["value"]
            if "messages" in value:
                assert value["contacts"][0]["wa_id"] == CUSTOMER.lstrip("+")
                assert value["contacts"][0]["user_id"]
                assert value["metadata"]["phone_number_id"] == made.phone_number_id
            wa.webhook_update_handler(post.body)
        assert ("button", "slot-pm", "Afternoon") in taps
        assert ("list", "track", "Track order") in taps
        assert ("message", "location", 48.85) in taps
    finally:
        await customer.close()


async def test_mark_read_and_typing_reach_the_customer(
    shop, settings, clock, receiver, tmp_path
) -> None:
    made, server = shop
    customer = await customer_device(settings, clock, server.url, tmp_path)
    wa = pywa_client(made, server.url)
    try:
        await customer.send_text(BUSINESS, "hello?")
        receiver.wait_for(lambda posts: _messages(posts))
        wamid = _messages(receiver.posts)[0]["id"]
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {made.access_token}"}
        ) as api:
            response = await api.post(
                f"/v23.0/{made.phone_number_id}/messages",
                json={
                    "messaging_product": "whatsapp",
                    "status": "read",
                    "message_id": wamid,
                    "typing_indicator": {"type": "text"},
                },
            )
            assert response.json() == {"success": True}
        assert (await asyncio.to_thread(wa.mark_message_as_read, wamid)).success
        events = await collect(
            customer,
            lambda ev: (
                any(isinstance(e, TypingEvent) for e in ev)
                and any(isinstance(e, ReceiptEvent) and e.type == "read" for e in ev)
            ),
        )
        assert any(isinstance(e, ReceiptEvent) and e.by == BUSINESS for e in events)
    finally:
        await customer.close()


async def test_graph_errors_and_async_failures(shop, settings, clock, receiver, tmp_path) -> None:
    made, server = shop
    other = await asyncio.to_thread(
        run_in_thread, lambda: _create(settings, "Other Co", "+15550109998")
    )
    good = {"messaging_product": "whatsapp", "to": CUSTOMER, "type": "text", "text": {"body": "hi"}}
    url = f"/v23.0/{made.phone_number_id}/messages"
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {made.access_token}"}
    ) as api:
        cases = [
            (api.post(url, json=good, headers={"Authorization": "Bearer nope"}), 401, 190),
            (api.post(f"/v23.0/{other.phone_number_id}/messages", json=good), 400, 100),
            (api.post(url, json={k: v for k, v in good.items() if k != "to"}), 400, 131008),
            (api.post(url, json={**good, "text": {"body": "x" * 4097}}), 400, 100),
            (api.post(url, json={**good, "messaging_product": "sms"}), 400, 100),
            (
                api.post(url, content=b"{nope", headers={"content-type": "application/json"}),
                400,
                100,
            ),
            (api.post(url, json={**good, "to": BUSINESS}), 400, 131021),
            (
                api.post(
                    url,
                    json={
                        **good,
                        "type": "template",
                        "template": {"name": "hello_world", "language": {"code": "en_US"}},
                    },
                ),
                404,
                132001,
            ),
        ]
        for request, status, code in cases:
            response = await request
            body = response.json()
            assert (response.status_code, body["error"]["code"]) == (status, code), body
            assert body["error"]["type"] == "OAuthException" and body["error"]["fbtrace_id"]
            assert body["error"]["message"].startswith(f"(#{code})")
        # Free-form to someone who never wrote: accepted, then a failed status with 131047
        # (no customer service window), as Meta does. (A template to a number not on the
        # network fails with 131026: tests/integration/test_policy_send.py.)
        accepted = await api.post(
            url, json={**good, "to": STRANGER, "biz_opaque_callback_data": "order-7"}
        )
        assert accepted.status_code == 200
        wamid = accepted.json()["messages"][0]["id"]
    receiver.wait_for(lambda posts: any(s["id"] == wamid for s in _statuses(posts)))
    [failed] = [s for s in _statuses(receiver.posts) if s["id"] == wamid]
    assert failed["status"] == "failed" and failed["errors"][0]["code"] == 131047
    assert failed["biz_opaque_callback_data"] == "order-7"


def test_database_holds_no_message_text(shop, settings, clock, receiver, tmp_path) -> None:
    made, server = shop

    async def scenario() -> None:
        customer = await customer_device(settings, clock, server.url, tmp_path)
        try:
            async with httpx.AsyncClient(
                base_url=server.url, headers={"Authorization": f"Bearer {made.access_token}"}
            ) as api:
                await api.post(
                    f"/v23.0/{made.phone_number_id}/messages",
                    json={
                        "messaging_product": "whatsapp",
                        "to": CUSTOMER,
                        "type": "text",
                        "text": {"body": "SECRET-PARCEL-CODE-4711"},
                    },
                )
            await collect(customer, lambda ev: messages(ev))
            await customer.send_text(BUSINESS, "REPLY-CONTENT-8842")
            receiver.wait_for(lambda posts: _messages(posts))
        finally:
            await customer.close()

    asyncio.run(scenario())
    from test_core_registration import _dump_database

    dump = _dump_database(server)
    assert "SECRET-PARCEL-CODE-4711" not in dump and "REPLY-CONTENT-8842" not in dump
    if settings.is_sqlite:
        raw = b"".join(p.read_bytes() for p in settings.data_dir.glob("tidings.db*"))
        assert b"SECRET-PARCEL-CODE-4711" not in raw and b"REPLY-CONTENT-8842" not in raw


async def test_phone_webhook_override_is_verified_and_scoped(shop, receiver) -> None:
    made, server = shop
    url = f"/v23.0/{made.phone_number_id}"
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {made.access_token}"}
    ) as api:
        node = (await api.get(url)).json()
        assert node["id"] == made.phone_number_id and node[
            "display_phone_number"
        ] == BUSINESS.lstrip("+")
        ok = await api.post(
            url,
            json={
                "webhook_configuration": {
                    "override_callback_uri": receiver.url,
                    "verify_token": receiver.verify_token,
                }
            },
        )
        assert ok.json() == {"success": True}
        wrong = await api.post(
            url,
            json={
                "webhook_configuration": {
                    "override_callback_uri": receiver.url,
                    "verify_token": "wrong",
                }
            },
        )
        assert wrong.status_code == 400 and wrong.json()["error"]["code"] == 2200
        missing = await api.post(url, json={})
        assert missing.json()["error"]["code"] == 131008
