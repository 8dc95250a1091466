"""`tidings chat`: the customer's app in the terminal (Textual).

    ┌ connection state ───────────────────────────────────────────────────┐
    │ Chats (unread)     │ chat title (verified name, promotions state)   │
    │  Demo Shop ✔ (2)   │ messages, each with its buttons and ticks      │
    │  +15550100002      │ …                                              │
    │                    │ composer                                       │
    └ key bindings ───────────────────────────────────────────────────────┘

The screen never waits on the network: receiving runs in one long-lived worker (sync, then
the websocket; on a drop it says so and reconnects with back-off), and every send, download
and control runs in a worker of its own. Widgets post messages up; this class acts on them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import tzinfo
from pathlib import Path
from typing import Any

import httpx
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.widgets import Footer, Input, Label, ListView

from tidings.kit.clock import Clock
from tidings.sdk import messages
from tidings.sdk.client import DeviceClient, check_phone
from tidings.sdk.conversations import Conversations
from tidings.sdk.errors import DeviceRemoved, SdkError
from tidings.sdk.events import (
    DeviceListChanged,
    Event,
    IncomingMessage,
    SecurityNotice,
    StoredMessage,
    TypingEvent,
)
from tidings.sdk.safety import safety_number_with
from tidings.tui.controls import Controls
from tidings.tui.devices import DevicesScreen
from tidings.tui.onboarding import RegisterScreen, Registration
from tidings.tui.preview import preview
from tidings.tui.screens import (
    MODAL_CSS,
    ListPicker,
    LocationPicker,
    MessageInfo,
    NewChat,
    SecurityCode,
)
from tidings.tui.widgets import Action, ActionChosen, ChatItem, ChatList, MessageBox

RECONNECT_MIN_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 30.0

CSS = (
    MODAL_CSS
    + """
#connection { height: 1; width: 100%; background: $primary; color: $text; padding: 0 1; }
#connection.offline { background: $error; }
#sidebar { width: 34; border-right: solid $primary-lighten-2; }
#sidebar-title, #chat-title { text-style: bold; padding: 0 1; height: 1; }
#chats { height: 1fr; }
#chat-title { width: 100%; background: $boost; }
#messages { height: 1fr; padding: 0 1; }
#replying { height: auto; color: $text-muted; padding: 0 1; }
#composer { dock: bottom; }
#main { width: 1fr; }
MessageBox { height: auto; margin: 0 0 1 0; padding: 0 1; border-left: thick $primary; }
MessageBox.outgoing { border-left: none; border-right: thick $success; margin-left: 8; }
MessageBox.incoming { margin-right: 8; }
MessageBox:focus { background: $boost; }
MessageBox .meta { color: $text-muted; text-align: right; }
MessageBox .actions { height: auto; }
MessageBox Button { margin: 0 1 0 0; }
MessageBox Button.chosen { text-style: bold reverse; }
ChatItem { height: 2; padding: 0 1; }
"""
)


class ChatApp(App[None]):
    TITLE = "Tidings"
    CSS = CSS
    BINDINGS = [
        Binding("ctrl+n", "new_chat", "New chat"),
        Binding("f2", "devices", "Devices"),
        Binding("f3", "security", "Security code"),
        Binding("f4", "toggle_promotions", "Stop/resume promotions"),
        Binding("f5", "block", "Block/report"),
        Binding("f6", "delete_chat", "Delete chat"),
        Binding("ctrl+q", "quit", "Quit"),
        Binding("escape", "cancel_reply", "Cancel reply", show=False),
    ]

    def __init__(
        self,
        profile: Path,
        *,
        registration: Registration | None = None,
        clock: Clock | None = None,
        tz: tzinfo | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        media_dir: Path | None = None,
        open_files: bool = True,
        open_chat: str | None = None,
    ) -> None:
        super().__init__()
        self.initial_chat = open_chat
        self.profile = profile.expanduser()
        self.registration = registration or Registration()
        self.clock = clock
        self.tz = tz
        self.transport = transport
        self.media_dir = media_dir or self.profile / "media"
        self.open_files = open_files
        self.client: DeviceClient | None = None
        self.conversations: Conversations | None = None
        self.controls: Controls | None = None
        self.peer: str | None = None
        self.replying: StoredMessage | None = None
        self.connection = "starting"
        self.typing: set[str] = set()
        self.last_saved: Path | None = None
        self.revision = 0  # bumped after each screen update (tests wait on it)
        self._changed = asyncio.Event()
        self._redraw = asyncio.Lock()  # one redraw at a time: workers finish in any order

    # -- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Label("starting…", id="connection")
        with Horizontal():
            with Vertical(id="sidebar"):
                yield Label("Chats", id="sidebar-title")
                yield ChatList(id="chats")
            with Vertical(id="main"):
                yield Label("Choose a chat, or Ctrl+N to start one", id="chat-title")
                yield VerticalScroll(id="messages")
                yield Label("", id="replying")
                yield Input(placeholder="Write a message and press Enter", id="composer")
        yield Footer()

    async def on_mount(self) -> None:
        if not _registered(self.profile):
            self.push_screen(RegisterScreen(self.profile, self.registration), self._registered)
        else:
            self.start()

    def _registered(self, client: DeviceClient | None) -> None:
        if client is None:
            self.exit()
            return
        self.start(client)

    @work(exclusive=True, group="open")
    async def start(self, client: DeviceClient | None = None) -> None:
        if client is None:
            try:
                client = await DeviceClient.open(
                    self.profile, transport=self.transport, clock=self.clock
                )
            except SdkError as exc:
                self.set_connection(f"cannot open {self.profile}: {exc.message}", ok=False)
                return
        self.client = client
        self.conversations = Conversations(client.store)
        self.controls = Controls(client, self.conversations)
        self.sub_title = client.phone
        await self.refresh_screen()
        self.check_profiles()
        if self.initial_chat:
            try:
                await self.open_chat(check_phone(self.initial_chat))
            except SdkError as exc:
                self.notify(exc.message, severity="error")
        self.stay_connected()

    async def on_unmount(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close()

    # -- connection -------------------------------------------------------------------------

    def set_connection(self, state: str, *, ok: bool = True) -> None:
        self.connection = state
        phone = self.client.phone if self.client else ""
        with contextlib.suppress(NoMatches):  # the app may be closing
            label = self.query_one("#connection", Label)
            label.update(f"{phone}  ●  {state}" if phone else state)
            label.set_class(not ok, "offline")
        self.bump()

    @work(exclusive=True, group="connection")
    async def stay_connected(self) -> None:
        """Sync, then live over the websocket; on a drop say so and reconnect with back-off."""
        assert self.client is not None
        delay = RECONNECT_MIN_SECONDS
        while True:
            try:
                self.set_connection("connecting…")
                events = await self.client.sync()
                self.set_connection("online")
                delay = RECONNECT_MIN_SECONDS
                await self.apply_events(events)
                async for event in self.client.listen(reconnect=False):
                    await self.apply_events([event])
            except DeviceRemoved:
                self.set_connection("this device was removed from the account", ok=False)
                return
            except (SdkError, OSError) as exc:
                reason = exc.message if isinstance(exc, SdkError) else str(exc)
                self.set_connection(f"offline ({reason}); reconnecting in {delay:.0f}s", ok=False)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    async def apply_events(self, events: list[Event]) -> None:
        changed = False
        for event in events:
            if isinstance(event, TypingEvent):
                self.typing.add(event.sender)
            elif isinstance(event, IncomingMessage):
                self.typing.discard(event.sender)
                changed = True
            elif isinstance(event, SecurityNotice):
                self.notify(event.message, title="Security", severity="warning")
            elif isinstance(event, DeviceListChanged):
                self.notify(f"Your devices changed: {len(event.device_ids)} now linked")
            else:
                changed = True
        if changed or events:
            await self.refresh_screen()
            self.mark_open_chat_read()
            self.check_profiles()

    @work(exclusive=True, group="profiles")
    async def check_profiles(self) -> None:
        """Learn which chats are businesses, and their verified names, from the platform."""
        if self.client is None or self.conversations is None:
            return
        peers = self.conversations.unchecked_profiles()
        if self.peer is not None and not self.conversations.settings(self.peer).profile_checked:
            peers.append(self.peer)
        for peer in dict.fromkeys(peers):
            try:
                await self.conversations.check_profile(self.client.api, peer)
            except SdkError:
                return  # offline: asked again after the next event
        if peers:
            await self.refresh_screen()

    # -- screen updates ---------------------------------------------------------------------

    def bump(self) -> None:
        self.revision += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        """Return once `predicate()` holds after some screen update (for tests and scripts)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("the screen did not reach the expected state in time")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def refresh_screen(self) -> None:
        if self.conversations is None:
            return
        try:
            async with self._redraw:
                chats = self.conversations.chats()
                await self.query_one(ChatList).show(chats, self.tz, self.peer)
                await self.show_chat()
        except NoMatches:
            pass  # the app is closing and its widgets are gone

    async def show_chat(self) -> None:
        container = self.query_one("#messages", VerticalScroll)
        title = self.query_one("#chat-title", Label)
        if self.peer is None or self.conversations is None:
            await container.remove_children()
            self.bump()
            return
        title.update(self._chat_heading(self.peer))
        history = self.conversations.messages(self.peer)
        by_id = {m.id: m for m in history}
        reactions = self.conversations.reactions(self.peer)
        answered = self.conversations.answered(self.peer)
        # A reaction is shown on the message it answers; one to a message this device does
        # not have (or cannot match) is shown on its own line.
        shown = [m for m in history if not _attached_reaction(m, by_id)]
        existing = {box.message.key: box for box in container.query_children(MessageBox)}
        wanted = {m.key for m in shown}
        stale = [box for key, box in existing.items() if key not in wanted]
        if stale or list(existing)[: len(existing)] != [m.key for m in shown][: len(existing)]:
            await container.remove_children()  # another chat, or a chat deleted: start over
            existing = {}
        new_boxes = []
        for message in shown:
            box = existing.get(message.key)
            if box is not None:
                box.update_state(message, reactions.get(message.id, []), answered)
                continue
            quote = messages.parse(message.content).quote
            new_boxes.append(
                MessageBox(
                    message,
                    quoted=by_id.get(quote.message_id) if quote else None,
                    reactions=reactions.get(message.id, []),
                    answered=answered,
                    tz=self.tz,
                )
            )
        if new_boxes:
            await container.mount_all(new_boxes)
            container.scroll_end(animate=False)
        self.bump()

    def _chat_heading(self, peer: str) -> str:
        assert self.conversations is not None
        settings = self.conversations.settings(peer)
        heading = settings.verified_name or settings.name or peer
        if settings.verified_name:
            heading += " ✔ verified business"
        if settings.security_verified:
            heading += "  🔒 security code verified"
        if settings.promotions_stopped:
            heading += "  · promotions stopped"
        if settings.blocked:
            heading += "  · blocked"
        if peer in self.typing:
            heading += "  · typing…"
        return heading

    def message_boxes(self) -> list[MessageBox]:
        return list(self.query(MessageBox))

    # -- choosing a chat, composing ---------------------------------------------------------

    @on(ListView.Selected, "#chats")
    async def chat_selected(self, event: ListView.Selected) -> None:
        if isinstance(event.item, ChatItem):
            await self.open_chat(event.item.chat.peer)

    async def open_chat(self, peer: str) -> None:
        self.peer = peer
        self.replying = None
        self.query_one("#replying", Label).update("")
        await self.refresh_screen()
        self.mark_open_chat_read()
        self.check_profiles()
        self.query_one("#composer", Input).focus()

    @work(group="read")
    async def mark_open_chat_read(self) -> None:
        if self.client is None or self.conversations is None or self.peer is None:
            return
        unread = self.conversations.unread_ids(self.peer)
        if not unread:
            return
        try:
            await self.client.mark_read(self.peer, unread)
        except SdkError as exc:
            self.notify(f"Could not send read receipts: {exc.message}", severity="warning")
            return
        await self.refresh_screen()

    @on(Input.Submitted, "#composer")
    def composed(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text or self.peer is None:
            return
        event.input.value = ""
        content: dict[str, Any] = {"type": "text", "text": text}
        if self.replying is not None:
            content = messages.reply_to(content, self.replying.id, self.replying.sender)
            self.replying = None
            self.query_one("#replying", Label).update("")
        self.send(content)

    @work(group="send")
    async def send(self, content: dict[str, Any], peer: str | None = None) -> None:
        to = peer or self.peer
        if self.client is None or to is None:
            return
        try:
            await self.client.send_content(to, content)
        except SdkError as exc:
            self.notify(f"Not sent: {exc.message}", severity="error")
        await self.refresh_screen()

    # -- messages' buttons ------------------------------------------------------------------

    @on(ActionChosen)
    def action_chosen(self, event: ActionChosen) -> None:
        self.act(event.action)

    def act(self, action: Action) -> None:
        message = action.message
        if action.kind == "button_reply":
            self.send(
                messages.reply_to(messages.button_reply(action.data), message.id, message.sender)
            )
        elif action.kind == "quick_reply":
            self.send(messages.template_quick_reply(action.data, message.id, message.sender))
        elif action.kind == "list":

            def chosen(row: messages.ListRow | None) -> None:
                if row is not None:
                    reply = messages.list_reply(row)
                    self.send(messages.reply_to(reply, message.id, message.sender))

            self.push_screen(ListPicker(action.data), chosen)
        elif action.kind == "location":

            def located(place: tuple[float, float, str] | None) -> None:
                if place is not None:
                    content = messages.location(place[0], place[1], place[2] or None)
                    self.send(messages.reply_to(content, message.id, message.sender))

            self.push_screen(LocationPicker(), located)
        elif action.kind == "url":
            self.notify(f"Opening {action.data}")
            if self.open_files:
                self.open_url(str(action.data))
        elif action.kind in ("copy", "phone"):
            self.copy_to_clipboard(str(action.data))
            self.notify(f"Copied {action.data}")
        elif action.kind == "media":
            self.save_media(action.data, message)

    @work(group="media")
    async def save_media(self, media: messages.Media, message: StoredMessage) -> None:
        if self.client is None or media.descriptor is None:
            return
        try:
            data = await self.client.download_attachment(media.descriptor)
        except SdkError as exc:
            self.notify(f"Could not download: {exc.message}", severity="error")
            return
        self.media_dir.mkdir(parents=True, exist_ok=True)
        name = Path(media.filename or f"{media.kind}.bin").name  # never a path from a sender
        target = self.media_dir / name
        counter = 1
        while target.exists():
            target = self.media_dir / f"{Path(name).stem}-{counter}{Path(name).suffix}"
            counter += 1
        target.write_bytes(data)
        self.notify(f"Saved to {target}")
        self.last_saved = target
        picture = preview(data) if media.kind in ("image", "sticker") else None
        if picture is not None:  # shown in the chat where the terminal has colours
            for box in self.message_boxes():
                if box.message.key == message.key:
                    await box.show_preview(picture)
        if self.open_files:
            self.open_url(target.as_uri())
        self.bump()

    @on(MessageBox.InfoRequested)
    def info_requested(self, event: MessageBox.InfoRequested) -> None:
        fresh = None
        if self.conversations is not None and self.peer is not None:
            fresh = self.conversations.find(self.peer, event.message.id)
        self.push_screen(MessageInfo(fresh or event.message, self.tz))

    def action_cancel_reply(self) -> None:
        self.replying = None
        self.query_one("#replying", Label).update("")

    @on(MessageBox.ReplyRequested)
    def reply_requested(self, event: MessageBox.ReplyRequested) -> None:
        self.replying = event.message
        preview = messages.preview(event.message.content)[:60]
        self.query_one("#replying", Label).update(f"Replying to: {preview}  (Esc to cancel)")
        self.query_one("#composer", Input).focus()

    # -- customer controls, devices, security ----------------------------------------------

    def action_new_chat(self) -> None:
        async def chosen(phone: str | None) -> None:
            if not phone:
                return
            try:
                await self.open_chat(check_phone(phone))
            except SdkError as exc:
                self.notify(exc.message, severity="error")

        self.push_screen(NewChat(), chosen)

    def action_toggle_promotions(self) -> None:
        if self.controls and self.peer:
            self.controls.toggle_promotions(self, self.peer)

    def action_block(self) -> None:
        if self.controls and self.peer:
            self.controls.block_or_unblock(self, self.peer)

    async def action_delete_chat(self) -> None:
        if self.conversations is None or self.peer is None:
            return
        removed = self.conversations.delete_chat(self.peer)
        self.notify(f"Deleted {removed} messages from this device")
        self.peer = None
        self.query_one("#chat-title", Label).update("Choose a chat, or Ctrl+N to start one")
        await self.refresh_screen()

    def action_devices(self) -> None:
        if self.client is not None:
            self.push_screen(DevicesScreen(self.client))

    @work(group="security")
    async def action_security(self) -> None:
        if self.client is None or self.conversations is None or self.peer is None:
            return
        peer = self.peer
        try:
            await self.client.verified_devices(peer)
            await self.client.verified_devices(self.client.phone)
            number = safety_number_with(self.client.store, self.client.phone, peer)
        except SdkError as exc:
            self.notify(exc.message, severity="error")
            return
        settings = self.conversations.settings(peer)
        confirmed = await self.push_screen_wait(
            SecurityCode(peer, number, settings.security_verified == number)
        )
        if confirmed:
            self.conversations.update(peer, security_verified=number)
            self.notify("Security code marked as verified")
            await self.refresh_screen()


def _attached_reaction(message: StoredMessage, by_id: dict[str, StoredMessage]) -> bool:
    body = messages.parse(message.content).body
    return isinstance(body, messages.Reaction) and body.target in by_id


def _registered(profile: Path) -> bool:
    from tidings.sdk.store import ProfileStore

    if not ProfileStore.exists(profile):
        return False
    store = ProfileStore.open(profile)
    try:
        return store.meta("status") == "active"
    finally:
        store.close()
