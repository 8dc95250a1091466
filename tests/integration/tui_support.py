"""Fixtures for the terminal app's tests: a provisioned business with a webhook receiver (the
business's side, the outer edge), a customer profile registered through the SDK, a business
sending through the public Business API over HTTP, and screen snapshots.

The clock is fixed (so times on screen, and so the snapshots, never change), and the terminal
size is fixed by `run_test(size=SIZE)`.
"""

from __future__ import annotations

import asyncio
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from business_support import Receiver, open_window, run_in_thread, start_receiver
from textual.pilot import Pilot

from conftest import RunningServer, ServerThread, issue_invite
from tidings.cli.business import _create, _webhook
from tidings.kit.clock import FrozenClock
from tidings.runtime import build_runtime
from tidings.sdk import DeviceClient
from tidings.tui.app import ChatApp

BUSINESS = "+15550109999"
CUSTOMER = "+15550100001"
SIZE = (120, 40)
SNAPSHOTS = Path(__file__).parent / "tui_snapshots"
FIXED_NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(FIXED_NOW)


@pytest.fixture
def receiver():
    made = Receiver()
    httpd = start_receiver(made)
    yield made
    httpd.shutdown()


@pytest.fixture
def shop(settings, clock, receiver):
    """A provisioned business with its webhook set, then the server started."""
    made = run_in_thread(lambda: _create(settings, "Acme Shop", BUSINESS))
    run_in_thread(
        lambda: _webhook(settings, made.phone_number_id, receiver.url, receiver.verify_token)
    )
    runtime = build_runtime(settings, clock=clock)
    thread = ServerThread(runtime)
    thread.start()
    yield made, RunningServer(f"http://127.0.0.1:{thread.port}", runtime, settings, clock)
    thread.stop()


async def register_customer(
    server: RunningServer,
    folder: Path,
    phone: str = CUSTOMER,
    name: str = "laptop",
    *,
    first_words: str | None = "hi",
) -> Path:
    """A registered customer profile; by default the customer has written to the business
    (opening the service window free-form messages need)."""
    code = await asyncio.to_thread(issue_invite, server.settings, phone, server.clock)
    client = await DeviceClient.register(server.url, phone, code, folder, name, clock=server.clock)
    try:
        if first_words is not None:
            await open_window(client, BUSINESS, server.settings, server.clock, first_words)
    finally:
        await client.close()
    return folder


def chat_app(profile: Path, clock: FrozenClock, tmp_path: Path) -> ChatApp:
    return ChatApp(profile, clock=clock, tz=UTC, media_dir=tmp_path / "media", open_files=False)


async def business_send(made: Any, server: RunningServer, message: dict[str, Any]) -> str:
    """POST a Cloud API message as the business's own code would; returns the wamid."""
    body = {"messaging_product": "whatsapp", "to": CUSTOMER, **message}
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post(
            f"/v23.0/{made.phone_number_id}/messages",
            json=body,
            headers={"authorization": f"Bearer {made.access_token}"},
        )
    assert response.status_code == 200, response.text
    return str(response.json()["messages"][0]["id"])


async def wait_webhook(receiver: Receiver, predicate) -> list[dict[str, Any]]:
    """Inbound messages the business received, other than the customer's opening text."""

    def replies() -> list[dict[str, Any]]:
        return [m for m in receiver.messages() if m["type"] != "text"]

    await asyncio.to_thread(receiver.wait_for, lambda _posts: bool(predicate(replies())))
    return replies()


async def read_everything(app: ChatApp) -> None:
    """Wait until the open chat is read, each chat's verified name looked up, and the chat
    list on screen says so (both happen in workers, then redraw)."""
    from tidings.tui.widgets import ChatItem

    await app.wait_until(
        lambda: all(
            item.chat.unread == 0 and item.chat.settings.profile_checked
            for item in app.query(ChatItem)
        )
    )


async def screen_text(app: ChatApp) -> str:
    """The text of the whole screen as the terminal shows it (after pending refreshes)."""
    await app.wait_for_refresh()
    return svg_text(app.export_screenshot())


def svg_text(svg: str) -> str:
    lines: dict[str, list[str]] = {}
    for match in re.finditer(r'<text[^>]*y="([\d.]+)"[^>]*>(.*?)</text>', svg):
        lines.setdefault(match.group(1), []).append(match.group(2))
    rows = ["".join(parts) for _, parts in sorted(lines.items(), key=lambda kv: float(kv[0]))]
    text = "\n".join(rows)
    for entity, char in (("&#160;", " "), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")):
        text = text.replace(entity, char)
    text = re.sub(r"&#x([0-9a-fA-F]+);", lambda m: chr(int(m.group(1), 16)), text)
    return re.sub(r"&#(\d+);", lambda m: chr(int(m.group(1))), text)


async def check_snapshot(app: ChatApp, name: str) -> None:
    """Compare the screen's text with the kept SVG snapshot (rewrite it with
    TIDINGS_UPDATE_SNAPSHOTS=1). Colours may change with Textual's themes; the words and
    their layout must not."""
    # A settled screen: every widget done with what it had queued (the footer recomposes its
    # keys after a focus change, and is blank meanwhile), then redrawn.
    await Pilot(app).pause()
    await app.wait_for_refresh()
    SNAPSHOTS.mkdir(exist_ok=True)
    path = SNAPSHOTS / f"{name}.svg"
    svg = app.export_screenshot(title=name)
    if os.environ.get("TIDINGS_UPDATE_SNAPSHOTS") == "1" or not path.exists():
        path.write_text(svg)
    assert _normalized(svg_text(svg)) == _normalized(svg_text(path.read_text())), (
        f"the screen differs from {path}; rerun with TIDINGS_UPDATE_SNAPSHOTS=1 if intended"
    )


def _normalized(text: str) -> str:
    # Business messages carry the platform's API device's wall-clock time (it runs on the
    # system clock, not the test's): times of day are masked, everything else must match.
    text = re.sub(r"\b\d\d:\d\d\b", "HH:MM", text)
    return "\n".join(line.rstrip() for line in text.splitlines())


__all__ = [
    "BUSINESS",
    "CUSTOMER",
    "SIZE",
    "business_send",
    "chat_app",
    "check_snapshot",
    "read_everything",
    "register_customer",
    "run_in_thread",
    "screen_text",
    "wait_webhook",
]
