"""The chat list, one message on screen (with its buttons), and the connection line.

Attributes down, messages up: widgets are given what to show and post a message when the
person acts (`ActionChosen`); the app does the network work in workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from rich.text import Text as RichText
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Label, ListItem, ListView, Static

from tidings.sdk.conversations import ChatSummary
from tidings.sdk.events import StoredMessage
from tidings.sdk.messages import Interactive, Media, Template, parse
from tidings.tui.render import body_text, clock_time, ticks


@dataclass(frozen=True)
class Action:
    """Something a person can do with a message: reply with a button, open a menu, open a
    link, copy a code, save a file, share a location."""

    kind: str  # button_reply | quick_reply | list | url | phone | copy | media | location
    label: str
    message: StoredMessage
    data: Any = None


class ActionChosen(Message):
    def __init__(self, action: Action) -> None:
        super().__init__()
        self.action = action


def actions_for(message: StoredMessage) -> list[Action]:
    """The buttons a message offers, in the order they are shown."""
    body = parse(message.content).body
    found: list[Action] = []
    if isinstance(body, Media) and body.descriptor is not None:
        found.append(Action("media", f"Save {body.kind}", message, body))
    if isinstance(body, Interactive | Template) and body.header and body.header.media:
        media = body.header.media
        if media.descriptor is not None:
            found.append(Action("media", f"Save {media.kind}", message, media))
    if message.direction != "in":
        return found
    if isinstance(body, Interactive):
        for button in body.buttons:
            found.append(Action("button_reply", button.title, message, button))
        if body.kind == "list" and body.sections:
            found.append(Action("list", f"☰ {body.menu or 'Choose'}", message, body))
        if body.link is not None:
            found.append(Action("url", f"↗ {body.link.title}", message, body.link.value))
        if body.kind == "location_request_message":
            found.append(Action("location", "📍 Send location", message))
    elif isinstance(body, Template):
        for button in body.buttons:
            found.append(Action("quick_reply", button.title, message, button))
        for link in body.links:
            prefix = {"url": "↗ ", "phone": "☎ ", "copy": "⧉ "}[link.kind]
            found.append(Action(link.kind, prefix + link.title, message, link.value))
    return found


class MessageBox(Vertical, can_focus=True):
    """One message: who and when, what it says, its reactions, and its buttons."""

    BINDINGS = [
        Binding("i", "info", "Message info"),
        Binding("r", "reply", "Reply"),
    ]

    class InfoRequested(Message):
        def __init__(self, message: StoredMessage) -> None:
            super().__init__()
            self.message = message

    class ReplyRequested(Message):
        def __init__(self, message: StoredMessage) -> None:
            super().__init__()
            self.message = message

    def __init__(
        self,
        message: StoredMessage,
        *,
        quoted: StoredMessage | None,
        reactions: list[tuple[str, str]],
        answered: set[str],
        tz: tzinfo | None,
    ) -> None:
        super().__init__(classes="outgoing" if message.direction == "out" else "incoming")
        self.message = message
        self._quoted = quoted
        self._reactions = reactions
        self._answered = answered
        self._tz = tz
        self.actions = actions_for(message)

    def compose(self) -> ComposeResult:
        yield Static(body_text(self.message, self._quoted), classes="body")
        reactions = Static(self._reaction_text(), classes="reactions")
        reactions.display = bool(self._reactions)
        yield reactions
        if self.actions:
            with Horizontal(classes="actions"):
                for index, action in enumerate(self.actions):
                    button = Button(action.label, id=f"act-{index}", compact=True)
                    button.set_class(self._was_chosen(action), "chosen")
                    yield button
        yield Static(self._meta_text(), classes="meta")

    async def show_preview(self, picture: RichText) -> None:
        """An image's preview, once the person saved it (see preview.py)."""
        for old in self.query(".preview"):
            await old.remove()
        await self.mount(Static(picture, classes="preview"), before=self.query_one(".meta"))

    def _meta_text(self) -> RichText:
        meta = RichText(clock_time(self.message.ts, self._tz), style="dim")
        meta.append("  ")
        meta.append_text(ticks(self.message))
        return meta

    def _reaction_text(self) -> str:
        return " ".join(emoji for _, emoji in self._reactions)

    def _was_chosen(self, action: Action) -> bool:
        chosen = getattr(action.data, "id", None)
        return chosen is not None and chosen in self._answered

    def update_state(
        self, message: StoredMessage, reactions: list[tuple[str, str]], answered: set[str]
    ) -> None:
        """Receipts, reactions and chosen buttons change; the message itself never does, so
        the widget stays (and keeps focus) while only these parts are redrawn."""
        self.message, self._reactions, self._answered = message, reactions, answered
        self.query_one(".meta", Static).update(self._meta_text())
        line = self.query_one(".reactions", Static)
        line.update(self._reaction_text())
        line.display = bool(self._reactions)
        for index, action in enumerate(self.actions):
            self.query_one(f"#act-{index}", Button).set_class(self._was_chosen(action), "chosen")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id and event.button.id.startswith("act-"):
            self.post_message(ActionChosen(self.actions[int(event.button.id[4:])]))

    def action_info(self) -> None:
        self.post_message(self.InfoRequested(self.message))

    def action_reply(self) -> None:
        self.post_message(self.ReplyRequested(self.message))


class ChatItem(ListItem):
    def __init__(self, chat: ChatSummary, tz: tzinfo | None) -> None:
        super().__init__(id=chat_item_id(chat.peer))
        self.chat = chat
        self._tz = tz

    def compose(self) -> ComposeResult:
        chat = self.chat
        title = RichText(chat.title, style="bold")
        if chat.verified:
            title.append(" ✔", style="green")
        if chat.settings.blocked:
            title.append(" ⛔", style="red")
        if chat.unread:
            title.append(f"  ({chat.unread})", style="bold reverse green")
        yield Label(title, classes="chat-title")
        line = RichText(clock_time(chat.last_ts, self._tz) + " ", style="dim")
        line.append(chat.last_preview.replace("\n", " ")[:40])
        yield Label(line, classes="chat-preview")


def chat_item_id(peer: str) -> str:
    return "chat-" + peer.lstrip("+")


class ChatList(ListView):
    """Chats, most recent first, with unread counts."""

    async def show(self, chats: list[ChatSummary], tz: tzinfo | None, selected: str | None) -> None:
        # Rebuilt only when a chat changed: every event redraws the screen, and a rebuild
        # leaves the list empty until the new items are mounted (a blink, or a blank list in a
        # screenshot taken meanwhile).
        if [item.chat for item in self.query_children(ChatItem)] != chats:
            await self.clear()
            await self.extend([ChatItem(chat, tz) for chat in chats])
        for index, chat in enumerate(chats):
            if chat.peer == selected:
                self.index = index
