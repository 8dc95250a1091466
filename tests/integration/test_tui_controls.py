# ruff: noqa: F811 - pytest fixtures imported from tui_support are named as parameters
"""Customer controls and receipts in the terminal app: ticks and message info per device,
'Stop promotions' (the next marketing template fails with 131050), block and report, and
deleting a chat on this device only."""

from __future__ import annotations

import asyncio

import httpx
from business_support import open_window
from template_send_support import body_params, create_approved
from textual.widgets import Button, Input, Static
from tui_support import (
    BUSINESS,
    SIZE,
    business_send,
    chat_app,
    clock,  # noqa: F401 - the fixed clock these tests share
    read_everything,
    receiver,  # noqa: F401
    register_customer,
    screen_text,
    shop,  # noqa: F401
)

from tidings.tui.screens import BlockReport, MessageInfo

OFFERS = {
    "name": "spring_sale",
    "language": "en_US",
    "category": "MARKETING",
    "components": [
        {
            "type": "BODY",
            "text": "Spring sale: {{1}} off all teapots this week. Shop now and save!",
            "example": {"body_text": [["20%"]]},
        },
        {"type": "FOOTER", "text": "Reply STOP to opt out"},
    ],
}


async def test_ticks_and_message_info_show_receipts_per_device(shop, receiver, tmp_path) -> None:
    made, server = shop
    profile = await register_customer(server, tmp_path / "alice")
    app = chat_app(profile, server.clock, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until(lambda: app.connection == "online")
        await app.open_chat(BUSINESS)
        app.query_one("#composer", Input).value = "Where is my parcel?"
        await pilot.press("enter")
        await asyncio.to_thread(
            receiver.wait_for,
            lambda _p: any(
                m.get("text", {}).get("body") == "Where is my parcel?" for m in receiver.messages()
            ),
        )
        wamid = next(
            m["id"] for m in receiver.messages() if m["text"]["body"] == "Where is my parcel?"
        )

        def status_of(text: str) -> str | None:
            for message in app.conversations.messages(BUSINESS):
                if message.content.get("text") == text:
                    return message.status
            return None

        await app.wait_until(lambda: status_of("Where is my parcel?") == "delivered")
        async with httpx.AsyncClient(base_url=server.url) as http:
            marked = await http.post(
                f"/v23.0/{made.phone_number_id}/messages",
                json={"messaging_product": "whatsapp", "status": "read", "message_id": wamid},
                headers={"authorization": f"Bearer {made.access_token}"},
            )
        assert marked.status_code == 200, marked.text
        await app.wait_until(lambda: status_of("Where is my parcel?") == "read")
        await app.wait_until(
            lambda: "✓✓" in str(app.message_boxes()[-1].query_one(".meta", Static).render())
        )

        box = app.message_boxes()[-1]
        box.focus()
        await pilot.press("i")
        await app.wait_until(lambda: isinstance(app.screen, MessageInfo))
        info = str(app.screen.query_one("#info", Static).render())
        assert "Sent: 2026-03-02 09:30:00" in info
        assert f"Delivered:\n  {BUSINESS} device" in info
        assert f"Read:\n  {BUSINESS} device" in info
        await pilot.press("escape")


async def test_stop_promotions_makes_the_next_marketing_template_fail(
    shop, receiver, tmp_path
) -> None:
    made, server = shop
    profile = await register_customer(server, tmp_path / "alice")
    with httpx.Client(
        base_url=server.url, headers={"authorization": f"Bearer {made.access_token}"}
    ) as graph:
        await asyncio.to_thread(create_approved, graph, made.waba_id, OFFERS)
    app = chat_app(profile, server.clock, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until(lambda: app.connection == "online")
        await app.open_chat(BUSINESS)
        await pilot.press("f4")
        await app.wait_until(lambda: app.conversations.settings(BUSINESS).promotions_stopped)
        assert "promotions stopped" in await screen_text(app)
        # The platform recorded the opt-out: it tells the business with user_preferences.
        await asyncio.to_thread(
            receiver.wait_for,
            lambda _p: any(v.get("user_preferences") for v in receiver.changes()),
        )
        wamid = await business_send(
            made,
            server,
            {
                "type": "template",
                "template": {
                    "name": "spring_sale",
                    "language": {"code": "en_US"},
                    "components": [body_params("20%")],
                },
            },
        )
        await asyncio.to_thread(
            receiver.wait_for,
            lambda _p: any(
                s["id"] == wamid and s["status"] == "failed" for s in receiver.statuses()
            ),
        )
        [failed] = [s for s in receiver.statuses() if s["id"] == wamid]
        assert failed["errors"][0]["code"] == 131050
        assert not [
            m for m in app.conversations.messages(BUSINESS) if "Spring sale" in str(m.content)
        ]

        # Resume: the next one is delivered and shown.
        await pilot.press("f4")
        await app.wait_until(lambda: not app.conversations.settings(BUSINESS).promotions_stopped)
        await asyncio.to_thread(
            receiver.wait_for,
            lambda _p: sum(len(v.get("user_preferences", [])) for v in receiver.changes()) >= 2,
        )
        await business_send(
            made,
            server,
            {
                "type": "template",
                "template": {
                    "name": "spring_sale",
                    "language": {"code": "en_US"},
                    "components": [body_params("25%")],
                },
            },
        )
        await app.wait_until(
            lambda: any("25% off" in str(m.content) for m in app.conversations.messages(BUSINESS))
        )


async def test_block_and_report_then_delete_the_chat(shop, receiver, tmp_path) -> None:
    made, server = shop
    profile = await register_customer(server, tmp_path / "alice")
    app = chat_app(profile, server.clock, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until(lambda: app.connection == "online")
        await business_send(made, server, {"type": "text", "text": {"body": "Buy now!!!"}})
        await app.wait_until(lambda: len(app.conversations.messages(BUSINESS)) == 2)
        await app.open_chat(BUSINESS)
        await read_everything(app)
        await pilot.press("f5")
        await app.wait_until(lambda: isinstance(app.screen, BlockReport))
        await pilot.click("#report-spam")
        await app.wait_until(lambda: app.conversations.settings(BUSINESS).blocked)
        assert "blocked" in await screen_text(app)
        # Controls are applied in order with messages: once a later message is applied, so is
        # the block.
        assert app.client is not None
        await open_window(app.client, BUSINESS, server.settings, server.clock, "why?")
        # The business can no longer reach the customer (reported as undeliverable).
        wamid = await business_send(made, server, {"type": "text", "text": {"body": "Hello?"}})
        await asyncio.to_thread(
            receiver.wait_for,
            lambda _p: any(
                s["id"] == wamid and s["status"] == "failed" for s in receiver.statuses()
            ),
        )
        [failed] = [s for s in receiver.statuses() if s["id"] == wamid]
        assert failed["errors"][0]["code"] == 131026

        # Deleting the chat forgets it on this device only.
        await pilot.press("f6")
        await app.wait_until(lambda: not app.conversations.chats())
        assert app.peer is None
        assert not [b for b in app.query(Button) if b.id and b.id.startswith("act-")]
