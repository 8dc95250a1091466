"""The README's first command, end to end: `tidings serve --demo` starts the server with the
demo shop beside it; a newcomer runs the printed `tidings chat` line (here: the same app,
headless), writes 'hi', gets the greeting with buttons, and presses one."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import pytest
from textual.widgets import Button, Input, OptionList
from tui_support import read_everything

from tidings.tui.app import ChatApp
from tidings.tui.onboarding import Registration
from tidings.tui.screens import ListPicker

TIDINGS = [sys.executable, "-m", "tidings.cli.main"]
SIZE = (120, 40)
SHOP = "+15550109000"


def received(app: ChatApp, kind: str) -> list[dict]:
    """Contents of that kind the shop sent to the app's profile."""
    assert app.conversations is not None
    return [
        m.content
        for m in app.conversations.messages(SHOP)
        if m.direction == "in" and m.content.get("type") == kind
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[str]:
    """`tidings serve --demo` as a newcomer starts it; yields what it printed."""
    port = free_port()
    process = subprocess.Popen(
        [*TIDINGS, "serve", "--data", str(tmp_path / "demo"), "--port", str(port), "--demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output: list[str] = []
        assert process.stdout is not None
        for line in process.stdout:  # blocks until the server says it is up
            output.append(line)
            if "Application startup complete" in line:
                break
        # Keep reading, or the server blocks on a full pipe once its log fills it.
        rest: list[str] = []
        threading.Thread(target=lambda: rest.extend(process.stdout or []), daemon=True).start()
        yield "".join(output)
        if os.environ.get("TIDINGS_DEMO_LOG"):
            print("".join(output + rest))
    finally:
        process.terminate()
        process.wait(timeout=30)


async def until(pilot, predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    """Let the app work until `predicate()` holds (for changes the app does not announce)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("the screen did not reach the expected state in time")
        await pilot.pause()


def chat_line(printed: str, phone: str) -> dict[str, str]:
    match = re.search(
        rf"tidings chat --server (\S+) --phone ({re.escape(phone)}) --code (\d{{6}})"
        r" --profile \S+ --open (\+\d+)",
        printed,
    )
    assert match is not None, printed
    server, phone, code, shop = match.groups()
    return {"server": server, "phone": phone, "code": code, "shop": shop}


async def test_demo_register_say_hi_and_get_the_greeting_with_buttons(demo, tmp_path) -> None:
    assert "Acme Demo Shop is +15550109000" in demo
    line = chat_line(demo, "+15550100001")
    registration = Registration(server=line["server"], phone=line["phone"], code=line["code"])
    app = ChatApp(
        tmp_path / "alice",
        registration=registration,
        open_chat=line["shop"],
        tz=UTC,
        open_files=False,
    )
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until(lambda: app.connection == "online")
        assert app.peer == "+15550109000"
        composer = app.query_one("#composer", Input)
        composer.focus()
        await pilot.press("h", "i", "enter")
        await app.wait_until(lambda: any(box.actions for box in app.message_boxes()))
        # Let the workers that mark the chat read and look up the shop's name redraw first: a
        # redraw between the press and the release of a click below would move its button.
        await read_everything(app)
        greeting = app.message_boxes()[-1]
        buttons = [str(b.label) for b in greeting.query(Button)]
        assert buttons == ["Track my order", "Talk to a person", "Today's offers"]
        # Tapping 'Track my order' brings the list of orders, with its menu button.
        await pilot.pause()  # let the layout settle after the last message arrived
        assert await pilot.click(greeting.query_one("#act-0", Button))
        await app.wait_until(
            lambda: any(a.kind == "list" for box in app.message_boxes() for a in box.actions)
        )
        # And the screen says so: the shop's chat, 'hi', the greeting, the reply, the menu.
        await app.wait_for_refresh()
        boxes = [str(box.message.content) for box in app.message_boxes()]
        assert "'hi'" in boxes[0]
        assert len(boxes) == 4

        # Choosing an order from the menu brings the shop's order-update template.
        [menu] = app.message_boxes()[-1].query(Button)
        menu.focus()
        await pilot.press("enter")
        await app.wait_until(lambda: isinstance(app.screen, ListPicker))
        # The screen is pushed before its rows are mounted and focused; Enter pressed earlier
        # goes nowhere.
        await until(pilot, lambda: isinstance(app.screen.focused, OptionList))
        await pilot.press("enter")
        await app.wait_until(lambda: bool(received(app, "template")))
        [update] = received(app, "template")
        assert update["template"]["name"] == "order_update"
        assert "Your order #1001 is on its way." in update["template"]["body"]["text"]

        # Stop promotions, then ask for today's offers: the shop honours the opt-out.
        await pilot.press("f4")
        await app.wait_until(lambda: app.conversations.settings(SHOP).promotions_stopped)
        await read_everything(app)
        greeting = app.message_boxes()[1]
        await pilot.pause()
        assert await pilot.click(greeting.query_one("#act-2", Button))
        await app.wait_until(
            lambda: any("not to send offers" in str(m) for m in received(app, "text"))
        )
        # A worker marks the open chat read after the answer is shown: let it finish before
        # quitting (the reopened app counts what this one left unread).
        await app.wait_until(lambda: not app.conversations.unread_ids(SHOP))
    # The same profile opens again without registering (the invite is used up).
    again = ChatApp(tmp_path / "alice", tz=UTC, open_files=False)
    async with again.run_test(size=SIZE):
        await again.wait_until(lambda: again.connection == "online")
        chats = again.conversations.chats() if again.conversations else []
        assert [c.peer for c in chats] == ["+15550109000"]
        assert chats[0].unread == 0
