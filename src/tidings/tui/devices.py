"""The devices screen: this account's devices, removing one, and linking a companion (a QR
code and a link code to type on the new device). Network work runs in workers."""

from __future__ import annotations

import io

import qrcode
from rich.text import Text as RichText
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Label, Static

from tidings.sdk.client import DeviceClient, DeviceSummary
from tidings.sdk.errors import SdkError

LINK_TIMEOUT_SECONDS = 600.0


def qr_block(text: str) -> str:
    """A QR code drawn with block characters, readable by a phone camera off a terminal."""
    qr = qrcode.QRCode(border=1)
    qr.add_data(text)
    buffer = io.StringIO()
    qr.print_ascii(out=buffer)
    return buffer.getvalue()


class DevicesScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("l", "link", "Link a device"),
        Binding("delete", "remove", "Remove device"),
    ]
    DEFAULT_CSS = """
    DevicesScreen #devices { height: auto; max-height: 12; }
    DevicesScreen #link { height: auto; border: round $accent; padding: 0 1; display: none; }
    DevicesScreen #link.visible { display: block; }
    DevicesScreen Horizontal { height: auto; }
    DevicesScreen Button { margin-right: 1; }
    """

    def __init__(self, client: DeviceClient) -> None:
        super().__init__()
        self.client = client
        self.devices: list[DeviceSummary] = []
        self.link_code: str | None = None
        self.linked: str | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Label(f"Devices of {self.client.phone}", classes="title")
            yield DataTable(id="devices", cursor_type="row")
            with Horizontal():
                yield Button("Link a device", id="link-device", variant="primary")
                yield Button("Remove selected", id="remove-device", variant="error")
                yield Button("Back", id="back")
            with Vertical(id="link"):
                yield Static("", id="link-code")
                yield Static("", id="qr")
            yield Label("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#devices", DataTable)
        table.add_columns("id", "name", "role", "last seen")
        if not self.client.primary:
            self.query_one("#link-device", Button).disabled = True
            self.query_one("#remove-device", Button).disabled = True
        self.refresh_devices()

    @work(exclusive=True, group="devices")
    async def refresh_devices(self) -> None:
        try:
            self.devices = await self.client.list_devices()
        except SdkError as exc:
            self.status(f"Could not list devices: {exc.message}")
            return
        table = self.query_one("#devices", DataTable)
        table.clear()
        for device in self.devices:
            role = "primary" if device.primary else "companion"
            if device.this_device:
                role += " (this device)"
            last_seen = (device.last_seen_at or "")[:16].replace("T", " ")
            table.add_row(str(device.device_id), device.name or "", role, last_seen)
        self.announce_change()

    def status(self, text: str) -> None:
        self.query_one("#status", Label).update(text)
        self.announce_change()

    def announce_change(self) -> None:
        """Say the screen changed: the app's `wait_until` (scripts and tests) looks again only
        then, so a change that is not announced is seen only when its wait runs out."""
        bump = getattr(self.app, "bump", None)
        if bump is not None:
            bump()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "link-device":
            self.action_link()
        elif event.button.id == "remove-device":
            self.action_remove()
        elif event.button.id == "back":
            self.app.pop_screen()

    def action_link(self) -> None:
        if self.client.primary:
            self.link_companion()

    def action_remove(self) -> None:
        table = self.query_one("#devices", DataTable)
        if not self.client.primary or not self.devices:
            return
        device = self.devices[min(table.cursor_row, len(self.devices) - 1)]
        if device.this_device:
            self.status("This is the primary device: it cannot remove itself.")
            return
        self.remove_device(device.device_id)

    @work(exclusive=True, group="remove")
    async def remove_device(self, device_id: int) -> None:
        try:
            await self.client.remove_device(device_id)
        except SdkError as exc:
            self.status(f"Could not remove device {device_id}: {exc.message}")
            return
        self.status(f"Device {device_id} removed.")
        self.refresh_devices()

    @work(exclusive=True, group="link")
    async def link_companion(self) -> None:
        try:
            link = await self.client.open_link()
        except SdkError as exc:
            self.status(f"Could not start linking: {exc.message}")
            return
        self.link_code = link.code
        panel = self.query_one("#link", Vertical)
        panel.add_class("visible")
        code = RichText("On the new device run:\n  ")
        code.append(f"tidings link join {link.code} --server {link.server} --profile DIR")
        code.append("\nor scan this code. Link code: ")
        code.append(link.code, style="bold")
        self.query_one("#link-code", Static).update(code)
        self.query_one("#qr", Static).update(qr_block(link.qr_text))
        self.status("Waiting for the new device…")
        try:
            linked = await self.client.wait_for_join(link, timeout=LINK_TIMEOUT_SECONDS)
        except SdkError as exc:
            self.status(f"Linking failed: {exc.message}")
            return
        finally:
            self.link_code = None
            panel.remove_class("visible")
        self.linked = linked.name or f"device {linked.device_id}"
        self.status(f"Linked {self.linked} (device {linked.device_id}).")
        self.refresh_devices()
