"""Modal screens: choose a list row, share a location, message info, block and report, a new
chat, and the security code. Each returns what the person chose through `dismiss`; the app
does the sending."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from rich.text import Text as RichText
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from tidings.sdk.events import StoredMessage
from tidings.sdk.messages import Interactive, ListRow

MODAL_CSS = """
ModalScreen { align: center middle; }
ModalScreen > Vertical {
    width: 72; height: auto; max-height: 90%; border: thick $accent; padding: 1 2;
    background: $surface;
}
ModalScreen Horizontal { height: auto; }
ModalScreen Button { margin-right: 1; }
ModalScreen .title { text-style: bold; margin-bottom: 1; }
ModalScreen .error { color: $error; }
"""


class ListPicker(ModalScreen[ListRow | None]):
    """A list message's menu: its sections and rows; Enter or a click picks a row."""

    BINDINGS = [Binding("escape", "dismiss_none", "Close")]

    def __init__(self, menu: Interactive) -> None:
        super().__init__()
        self.menu = menu

    def compose(self) -> ComposeResult:
        options: list[Option | None] = []
        for section in self.menu.sections:
            if section.title:
                options.append(Option(RichText(section.title, style="bold dim"), disabled=True))
            for row in section.rows:
                label = RichText(row.title)
                if row.description:
                    label.append(f"\n{row.description}", style="dim")
                options.append(Option(label, id=row.id))
        with Vertical():
            yield Label(self.menu.menu or "Choose", classes="title")
            yield OptionList(*options, id="rows")
            yield Button("Cancel", id="cancel")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        for row in self.menu.rows:
            if row.id == event.option.id:
                self.dismiss(row)

    def on_button_pressed(self, _event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class LocationPicker(ModalScreen[tuple[float, float, str] | None]):
    """Answer a location request: latitude, longitude and an optional name."""

    BINDINGS = [Binding("escape", "dismiss_none", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Share a location", classes="title")
            yield Input(placeholder="latitude, e.g. 52.52", id="latitude")
            yield Input(placeholder="longitude, e.g. 13.405", id="longitude")
            yield Input(placeholder="name (optional)", id="name")
            yield Label("", id="error", classes="error")
            with Horizontal():
                yield Button("Send", id="send", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "cancel":
            self.dismiss(None)
            return
        try:
            latitude = float(self.query_one("#latitude", Input).value)
            longitude = float(self.query_one("#longitude", Input).value)
        except ValueError:
            self.query_one("#error", Label).update("Latitude and longitude must be numbers.")
            return
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            self.query_one("#error", Label).update("That is not a place on Earth.")
            return
        self.dismiss((latitude, longitude, self.query_one("#name", Input).value.strip()))

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


def message_info_text(message: StoredMessage, tz: tzinfo | None) -> RichText:
    """When a message was sent, and delivered to and read on each device."""

    def when(ts: int | None) -> str:
        if ts is None:
            return "—"
        return datetime.fromtimestamp(ts / 1000, tz or UTC).strftime("%Y-%m-%d %H:%M:%S")

    out = RichText()
    verb = "Sent" if message.direction == "out" else "Received"
    out.append(f"{verb}: ", style="bold")
    out.append(f"{when(message.ts)}  (status: {message.status})\n")
    out.append(f"From: {message.sender} device {message.sender_device}\n")
    if not message.receipts:
        out.append("No receipts yet.", style="dim")
    for kind in ("delivered", "read"):
        rows = [r for r in message.receipts if r["type"] == kind]
        if rows:
            out.append(f"\n{kind.capitalize()}:\n", style="bold")
        for receipt in rows:
            out.append(f"  {receipt['by']} device {receipt['device']}   {when(receipt['ts'])}\n")
    return out


class MessageInfo(ModalScreen[None]):
    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, message: StoredMessage, tz: tzinfo | None) -> None:
        super().__init__()
        self.message = message
        self._tz = tz

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Message info", classes="title")
            yield Static(message_info_text(self.message, self._tz), id="info")
            yield Button("Close", id="close")

    def on_button_pressed(self, _event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)


class BlockReport(ModalScreen[tuple[bool, str | None] | None]):
    """Block a business, optionally reporting it with a reason; returns (report, reason)."""

    BINDINGS = [Binding("escape", "dismiss_none", "Close")]

    def __init__(self, title: str) -> None:
        super().__init__()
        self.chat_title = title

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Block {self.chat_title}?", classes="title")
            yield Static(
                "They will not be able to message you. Reporting also tells Tidings why, which"
                " counts against the business's quality rating."
            )
            with Horizontal():
                yield Button("Block", id="block", variant="warning")
                yield Button("Block and report spam", id="report-spam", variant="error")
                yield Button("Report offensive", id="report-offensive", variant="error")
                yield Button("Cancel", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        choice = event.button.id or "cancel"
        if choice == "cancel":
            self.dismiss(None)
        elif choice == "block":
            self.dismiss((False, None))
        else:
            self.dismiss((True, choice.removeprefix("report-")))

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class NewChat(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "dismiss_none", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("New chat", classes="title")
            yield Input(placeholder="phone number, e.g. +15550109000", id="phone")
            with Horizontal():
                yield Button("Open", id="open", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.dismiss(self.query_one("#phone", Input).value.strip() or None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "open":
            self.dismiss(self.query_one("#phone", Input).value.strip() or None)
        else:
            self.dismiss(None)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class SecurityCode(ModalScreen[bool]):
    """The safety number shared with a contact; 'Mark as verified' once both sides match."""

    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, peer: str, number: str, verified: bool) -> None:
        super().__init__()
        self.peer = peer
        self.number = number
        self.verified = verified

    def compose(self) -> ComposeResult:
        from tidings.sdk.safety import grouped

        with Vertical():
            yield Label(f"Security code with {self.peer}", classes="title")
            yield Static(RichText(grouped(self.number), style="bold"), id="safety-number")
            yield Static(
                "Compare these digits with the ones on their screen. If they match, your"
                " messages are end-to-end encrypted to them and nobody in between."
            )
            state = "✔ verified" if self.verified else "not verified yet"
            yield Label(state, id="verified-state")
            with Horizontal():
                yield Button("Mark as verified", id="verify", variant="success")
                yield Button("Close", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "verify")

    def action_close(self) -> None:
        self.dismiss(False)
