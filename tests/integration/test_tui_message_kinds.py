# ruff: noqa: F811 - pytest fixtures imported from tui_support are named as parameters
"""Every kind of message a business sends through the Business API, as the terminal app shows
it: text with links, media (saved on request), location, contacts, a reply quoting the
customer, a reaction, a CTA URL, a location request (answered from the app) and a template
with header, body, footer and buttons (its quick reply reaches the business as `button`)."""

from __future__ import annotations

import asyncio

import httpx
from media_support import png
from template_send_support import ORDER_UPDATE, body_params, create_approved
from textual.widgets import Button, Input, Static
from tui_support import (
    BUSINESS,
    SIZE,
    business_send,
    chat_app,
    check_snapshot,
    clock,  # noqa: F401 - the fixed clock these tests share
    read_everything,
    receiver,  # noqa: F401
    register_customer,
    screen_text,
    shop,  # noqa: F401
    wait_webhook,
)

from tidings.tui.screens import LocationPicker


async def upload_image(made, server, data: bytes) -> str:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post(
            f"/v23.0/{made.phone_number_id}/media",
            data={"messaging_product": "whatsapp"},
            files={"file": ("shopfront.png", data, "image/png")},
            headers={"authorization": f"Bearer {made.access_token}"},
        )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def button(app, label: str) -> Button:
    [found] = [b for box in app.message_boxes() for b in box.query(Button) if str(b.label) == label]
    return found


async def test_each_message_kind_reaches_the_screen(shop, receiver, tmp_path) -> None:
    made, server = shop
    profile = await register_customer(server, tmp_path / "alice", first_words="hi")
    hi_wamid = (await asyncio.to_thread(receiver.wait_for, lambda posts: posts))[0].json["entry"][
        0
    ]["changes"][0]["value"]["messages"][0]["id"]
    image = png(b"shopfront")
    media_id = await upload_image(made, server, image)
    sends = [
        {"type": "text", "text": {"body": "Welcome! Terms at https://shop.example/terms."}},
        {"type": "image", "image": {"id": media_id, "caption": "Our new shop front"}},
        {
            "type": "location",
            "location": {
                "latitude": 52.52,
                "longitude": 13.405,
                "name": "Acme Depot",
                "address": "Main St 1",
            },
        },
        {
            "type": "contacts",
            "contacts": [
                {
                    "name": {"formatted_name": "Ann Agent", "first_name": "Ann"},
                    "phones": [{"phone": "+15550100777", "type": "WORK"}],
                }
            ],
        },
        {
            "type": "text",
            "text": {"body": "Thanks for writing!"},
            "context": {"message_id": hi_wamid},
        },
        {"type": "reaction", "reaction": {"message_id": hi_wamid, "emoji": "👍"}},
        {
            "type": "interactive",
            "interactive": {
                "type": "cta_url",
                "body": {"text": "See our catalogue"},
                "action": {
                    "name": "cta_url",
                    "parameters": {"display_text": "Open catalogue", "url": "https://shop.example"},
                },
            },
        },
        {
            "type": "interactive",
            "interactive": {
                "type": "location_request_message",
                "body": {"text": "Where should we deliver?"},
                "action": {"name": "send_location"},
            },
        },
    ]
    app = chat_app(profile, server.clock, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until(lambda: app.connection == "online")
        for message in sends:
            await business_send(made, server, message)
        await app.wait_until(lambda: len(app.conversations.messages(BUSINESS)) == 1 + len(sends))
        await app.open_chat(BUSINESS)
        text = await screen_text(app)
        for shown in (
            "Terms at https://shop.example/terms.",  # text, its link styled as a link
            "🖼 shopfront.png  (image/png)",
            "Our new shop front",
            "📍 Acme Depot — Main St 1",
            "52.52000, 13.40500",
            "👤 Ann Agent",
            "+15550100777",
            "│ hi",  # the reply quotes the customer's message
            "Thanks for writing!",
            "See our catalogue",
            "↗ Open catalogue",
            "Where should we deliver?",
            "📍 Send location",
        ):
            assert shown in text, shown
        # The reaction is shown on the message it answers (the customer's 'hi').
        hi = app.message_boxes()[0]
        assert hi.message.text == "hi"
        assert str(hi.query_one(".reactions", Static).render()) == "👍"
        assert "reacted 👍" not in text
        await read_everything(app)
        await check_snapshot(app, "tui_message_kinds")

        # Media is saved to the media folder on request, decrypted and intact.
        save = button(app, "Save image")
        save.focus()
        await pilot.press("enter")
        await app.wait_until(lambda: app.last_saved is not None)
        assert app.last_saved is not None and app.last_saved.read_bytes() == image
        # ... and previewed in the chat (a 1 by 1 image: one half-block cell).
        await app.wait_until(lambda: bool(app.query(".preview")))
        assert str(app.query_one(".preview", Static).render()) == "▀"

        # A location request is answered from the app: the business receives the location.
        button(app, "📍 Send location").focus()
        await pilot.press("enter")
        await app.wait_until(lambda: isinstance(app.screen, LocationPicker))
        app.screen.query_one("#latitude", Input).value = "48.8566"
        app.screen.query_one("#longitude", Input).value = "2.3522"
        app.screen.query_one("#name", Input).value = "Home"
        await pilot.click("#send")
        [location] = await wait_webhook(
            receiver, lambda ms: [m for m in ms if m["type"] == "location"]
        )
        assert location["location"] == {"latitude": 48.8566, "longitude": 2.3522, "name": "Home"}


async def test_template_renders_and_its_quick_reply_reaches_the_business(
    shop, receiver, tmp_path
) -> None:
    made, server = shop
    profile = await register_customer(server, tmp_path / "alice", first_words="hi")
    with httpx.Client(
        base_url=server.url, headers={"authorization": f"Bearer {made.access_token}"}
    ) as graph:
        await asyncio.to_thread(create_approved, graph, made.waba_id, ORDER_UPDATE)
    app = chat_app(profile, server.clock, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until(lambda: app.connection == "online")
        wamid = await business_send(
            made,
            server,
            {
                "type": "template",
                "template": {
                    "name": "order_update",
                    "language": {"code": "en_US"},
                    "components": [
                        {"type": "header", "parameters": [{"type": "text", "text": "A-1001"}]},
                        body_params("Ann", "$19.99", "August 5"),
                        {
                            "type": "button",
                            "sub_type": "url",
                            "index": "2",
                            "parameters": [{"type": "text", "text": "A-1001"}],
                        },
                    ],
                },
            },
        )
        await app.wait_until(lambda: len(app.conversations.messages(BUSINESS)) == 2)
        await app.open_chat(BUSINESS)
        text = await screen_text(app)
        for shown in (
            "Order A-1001 update",
            "Hi Ann, we charged $19.99 for your order, which ships on August 5.",
            "Acme Shop customer care",
            "Looks right",
            "Change it",
            "↗ Track",
            "☎ Call us",
        ):
            assert shown in text, shown
        await read_everything(app)
        await check_snapshot(app, "tui_template")
        await pilot.pause()
        assert await pilot.click(button(app, "Looks right"))
        [reply] = await wait_webhook(receiver, lambda ms: ms)
        assert reply["type"] == "button"
        assert reply["button"]["text"] == "Looks right"
        assert reply["context"]["id"] == wamid
