# ruff: noqa: F811 - pytest fixtures imported from tui_support are named as parameters
"""Devices and trust in the terminal app: link a companion from the app (QR code and link
code) so the next message reaches both, remove it again, compare a security code with a
contact, and see the connection drop and come back."""

from __future__ import annotations

import asyncio
import socket
import threading

import uvicorn
from textual.widgets import DataTable, Input, Label, Static
from tui_support import (
    BUSINESS,
    CUSTOMER,
    SIZE,
    business_send,
    chat_app,
    clock,  # noqa: F401 - the fixed clock these tests share
    receiver,  # noqa: F401
    register_customer,
    screen_text,
    shop,  # noqa: F401
)

from conftest import issue_invite
from tidings.app import create_app
from tidings.runtime import build_runtime
from tidings.sdk import DeviceClient, IncomingMessage
from tidings.sdk.safety import safety_number_with
from tidings.tui.devices import DevicesScreen
from tidings.tui.screens import SecurityCode

BOB = "+15550100002"


async def test_link_a_companion_from_the_app_then_remove_it(shop, tmp_path) -> None:
    made, server = shop
    profile = await register_customer(server, tmp_path / "alice")
    app = chat_app(profile, server.clock, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until(lambda: app.connection == "online")
        await pilot.press("f2")
        await app.wait_until(lambda: isinstance(app.screen, DevicesScreen))
        devices = app.screen
        assert isinstance(devices, DevicesScreen)
        await app.wait_until(lambda: devices.query_one(DataTable).row_count == 1)
        await pilot.press("l")
        await app.wait_until(lambda: devices.link_code is not None)
        code = devices.link_code
        assert code is not None
        assert "Link code:" in await screen_text(app)
        assert f"Link code: {code}" in str(devices.query_one("#link-code", Static).render())
        assert "█" in str(devices.query_one("#qr", Static).render())  # the QR code is drawn

        companion = await DeviceClient.join(
            server.url, code, tmp_path / "alice-tablet", "tablet", timeout=30
        )
        try:
            await app.wait_until(lambda: devices.linked == "tablet")
            await app.wait_until(lambda: devices.query_one(DataTable).row_count == 2)
            assert "Linked tablet" in str(devices.query_one("#status", Label).render())

            # The next message from the business reaches both devices.
            await business_send(made, server, {"type": "text", "text": {"body": "Both of you"}})
            await app.wait_until(
                lambda: any(m.text == "Both of you" for m in app.conversations.messages(BUSINESS))
            )
            received = await companion.receive_once(20)
            texts = [e.text for e in received if isinstance(e, IncomingMessage)]
            assert "Both of you" in texts
            assert companion.phone == CUSTOMER

            # Remove it: pick its row, press Delete.
            table = devices.query_one(DataTable)
            table.focus()
            table.move_cursor(row=[d.this_device for d in devices.devices].index(False))
            await pilot.press("delete")
            await app.wait_until(lambda: table.row_count == 1)
            assert "removed" in str(devices.query_one("#status", Label).render())
        finally:
            await companion.close()


async def test_security_code_matches_the_contacts_and_can_be_marked_verified(
    server, tmp_path
) -> None:
    profile = await register_customer(server, tmp_path / "alice", first_words=None)
    code = await asyncio.to_thread(issue_invite, server.settings, BOB, server.clock)
    bob = await DeviceClient.register(server.url, BOB, code, tmp_path / "bob", "phone")
    try:
        await bob.send_text(CUSTOMER, "hello alice")
        app = chat_app(profile, server.clock, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await app.wait_until(lambda: bool(app.conversations and app.conversations.chats()))
            await app.open_chat(BOB)
            await pilot.press("f3")
            await app.wait_until(lambda: isinstance(app.screen, SecurityCode))
            screen = app.screen
            assert isinstance(screen, SecurityCode)
            await bob.verified_devices(CUSTOMER)
            theirs = safety_number_with(bob.store, BOB, CUSTOMER)
            assert screen.number == theirs and len(theirs) == 60
            digits = str(screen.query_one("#safety-number", Static).render()).split()
            assert "".join(digits) == theirs
            await pilot.click("#verify")
            await app.wait_until(
                lambda: app.conversations.settings(BOB).security_verified == theirs
            )
            assert "security code verified" in await screen_text(app)
    finally:
        await bob.close()


def serve_on(runtime, port: int | None = None) -> tuple[uvicorn.Server, threading.Thread, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port or 0))
    sock.listen(128)
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    return server, thread, sock.getsockname()[1]


async def test_a_dropped_connection_shows_and_reconnects(settings, clock, tmp_path) -> None:
    runtime = build_runtime(settings, clock=clock)
    first, thread, port = serve_on(runtime)
    url = f"http://127.0.0.1:{port}"
    code = await asyncio.to_thread(issue_invite, settings, CUSTOMER, clock)
    client = await DeviceClient.register(url, CUSTOMER, code, tmp_path / "alice", "laptop")
    await client.close()
    app = chat_app(tmp_path / "alice", clock, tmp_path)
    async with app.run_test(size=SIZE):
        await app.wait_until(lambda: app.connection == "online")
        first.should_exit = True
        await asyncio.to_thread(thread.join, 30)
        await app.wait_until(lambda: app.connection.startswith("offline"))
        assert "reconnecting" in str(app.query_one("#connection", Label).render())
        assert app.query_one("#connection", Label).has_class("offline")
        second, thread2, _ = serve_on(build_runtime(settings, clock=clock), port)
        try:
            await app.wait_until(lambda: app.connection == "online", timeout=40)
            assert not app.query_one("#connection", Label).has_class("offline")
            app.query_one("#composer", Input)  # the screen stayed usable throughout
        finally:
            second.should_exit = True
            await asyncio.to_thread(thread2.join, 30)
