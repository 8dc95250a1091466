# ruff: noqa: F811 - pytest fixtures imported from tui_support are named as parameters
"""The terminal app against a real server: a business's reply buttons and list reach the
screen as widgets, and pressing them sends what the business's webhook receives as
`button_reply` / `list_reply` (with the interactive message as context)."""

from __future__ import annotations

from textual.widgets import Button, OptionList
from tui_support import (
    BUSINESS,
    CUSTOMER,
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

from tidings.tui.screens import ListPicker
from tidings.tui.widgets import chat_item_id

GREETING = {
    "type": "interactive",
    "interactive": {
        "type": "button",
        "header": {"type": "text", "text": "Acme Shop"},
        "body": {"text": "Hi! How can we help? See https://acme.example/help"},
        "footer": {"text": "Replies in minutes"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "track", "title": "Track my order"}},
                {"type": "reply", "reply": {"id": "agent", "title": "Talk to a person"}},
                {"type": "reply", "reply": {"id": "offers", "title": "Today's offers"}},
            ]
        },
    },
}

ORDERS = {
    "type": "interactive",
    "interactive": {
        "type": "list",
        "body": {"text": "Which order?"},
        "action": {
            "button": "Your orders",
            "sections": [
                {
                    "title": "Open",
                    "rows": [
                        {"id": "order-1001", "title": "#1001 Teapot", "description": "Shipped"},
                        {"id": "order-1002", "title": "#1002 Cups"},
                    ],
                },
                {"title": "Delivered", "rows": [{"id": "order-0999", "title": "#0999 Kettle"}]},
            ],
        },
    },
}


async def test_reply_button_press_reaches_the_business_webhook(shop, receiver, tmp_path) -> None:
    made, server = shop
    profile = await register_customer(server, tmp_path / "alice")
    app = chat_app(profile, server.clock, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until(lambda: app.connection == "online")
        wamid = await business_send(made, server, GREETING)
        await app.wait_until(lambda: len(app.conversations.messages(BUSINESS)) == 2)
        # The chat list shows the business's verified name (from the platform) and one unread.
        await app.wait_until(lambda: app.conversations.settings(BUSINESS).verified_name is not None)
        await app.wait_for_refresh()
        assert "Acme Shop ✔  (1)" in await screen_text(app)

        await pilot.click(f"#{chat_item_id(BUSINESS)}")
        await app.wait_until(lambda: len(app.message_boxes()) == 2)
        box = app.message_boxes()[-1]
        labels = [str(b.label) for b in box.query(Button)]
        assert labels == ["Track my order", "Talk to a person", "Today's offers"]
        text = await screen_text(app)
        for shown in ("Acme Shop", "Hi! How can we help?", "Replies in minutes"):
            assert shown in text
        # Opening the chat read the message: the business gets a read status.
        await read_everything(app)
        await check_snapshot(app, "tui_buttons")

        await pilot.pause()  # let the layout settle after the last message arrived
        assert await pilot.click(box.query_one("#act-0", Button))
        [reply] = await wait_webhook(receiver, lambda ms: ms)
        assert reply["from"] == CUSTOMER.lstrip("+")
        assert reply["interactive"] == {
            "type": "button_reply",
            "button_reply": {"id": "track", "title": "Track my order"},
        }
        assert reply["context"]["id"] == wamid
        # The reply shows in the conversation, and the pressed button is marked.
        await app.wait_until(lambda: len(app.message_boxes()) == 3)
        assert "Track my order" in await screen_text(app)
        assert app.message_boxes()[1].query_one("#act-0", Button).has_class("chosen")


async def test_list_menu_row_sends_list_reply(shop, receiver, tmp_path) -> None:
    made, server = shop
    profile = await register_customer(server, tmp_path / "alice")
    app = chat_app(profile, server.clock, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until(lambda: app.connection == "online")
        await business_send(made, server, ORDERS)
        await app.wait_until(lambda: len(app.conversations.messages(BUSINESS)) == 2)
        await app.open_chat(BUSINESS)
        box = app.message_boxes()[-1]
        [menu] = box.query(Button)
        assert str(menu.label) == "☰ Your orders"
        menu.focus()
        await pilot.press("enter")
        await app.wait_until(lambda: isinstance(app.screen, ListPicker))
        options = app.screen.query_one(OptionList)
        shown = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert shown == ["Open", "#1001 Teapot\nShipped", "#1002 Cups", "Delivered", "#0999 Kettle"]
        await check_snapshot(app, "tui_list_menu")
        options.focus()
        await pilot.press("enter")  # the first row is highlighted (section titles are not rows)
        inbound = await wait_webhook(receiver, lambda ms: ms)
        [reply] = inbound
        assert reply["interactive"] == {
            "type": "list_reply",
            "list_reply": {"id": "order-1001", "title": "#1001 Teapot", "description": "Shipped"},
        }
