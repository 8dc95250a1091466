"""Conversations over a device's sealed local history: the chat list, one chat's messages,
unread counts, per-chat settings (names, stopped promotions, blocked, verified) and local
deletion. Everything here reads and writes the profile store only; sending stays in
`DeviceClient`.

    chats = Conversations(client.store)
    for chat in chats.chats(): print(chat.title, chat.unread)
    messages = chats.messages("+15550109999")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tidings.protocol.codes import ErrorCode
from tidings.sdk.errors import SdkError
from tidings.sdk.events import StoredMessage
from tidings.sdk.http import ServerApi
from tidings.sdk.messages import InteractiveReply, Reaction, parse, preview
from tidings.sdk.store import ProfileStore

HISTORY_SCAN = 10_000  # messages read to build the chat list (a terminal client's history)


@dataclass
class ChatSettings:
    """What this device remembers about one chat (sealed with the rest of the profile)."""

    name: str | None = None
    verified_name: str | None = None  # the business's verified name, as the platform states it
    promotions_stopped: bool = False
    blocked: bool = False
    security_verified: str | None = None  # the safety number the user confirmed
    profile_checked: bool = False  # asked the platform whether this is a business

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ChatSettings:
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)


@dataclass(frozen=True)
class ChatSummary:
    peer: str
    title: str
    verified: bool  # the title is the business's verified name
    last_preview: str
    last_ts: int
    unread: int
    settings: ChatSettings = field(default_factory=ChatSettings)


def counts_as_unread(message: StoredMessage) -> bool:
    if message.direction != "in" or message.status == "read":
        return False
    return not isinstance(parse(message.content).body, Reaction)


class Conversations:
    def __init__(self, store: ProfileStore) -> None:
        self.store = store

    # -- chats ------------------------------------------------------------------------------

    def chats(self) -> list[ChatSummary]:
        """Every chat with at least one message, most recent first."""
        with self.store.transaction() as state:
            history = state.messages(HISTORY_SCAN)
        by_peer: dict[str, list[StoredMessage]] = {}
        for message in history:
            by_peer.setdefault(message.conversation, []).append(message)
        chats = []
        for peer, messages in by_peer.items():
            settings = self.settings(peer)
            shown = [m for m in messages if not isinstance(parse(m.content).body, Reaction)]
            last = (shown or messages)[-1]
            chats.append(
                ChatSummary(
                    peer=peer,
                    title=settings.verified_name or settings.name or peer,
                    verified=settings.verified_name is not None,
                    last_preview=preview(last.content),
                    last_ts=last.ts,
                    unread=sum(1 for m in messages if counts_as_unread(m)),
                    settings=settings,
                )
            )
        return sorted(chats, key=lambda c: c.last_ts, reverse=True)

    def messages(self, peer: str, limit: int = 500) -> list[StoredMessage]:
        """One chat's messages, oldest first."""
        with self.store.transaction() as state:
            history = state.messages(HISTORY_SCAN)
        return [m for m in history if m.conversation == peer][-limit:]

    def unread_ids(self, peer: str) -> list[str]:
        return [m.id for m in self.messages(peer) if counts_as_unread(m)]

    def find(self, peer: str, message_id: str) -> StoredMessage | None:
        for message in self.messages(peer):
            if message.id == message_id:
                return message
        return None

    def reactions(self, peer: str) -> dict[str, list[tuple[str, str]]]:
        """message id → [(reacting account, emoji)], the latest reaction of each account."""
        latest: dict[tuple[str, str], str] = {}
        for message in self.messages(peer):
            body = parse(message.content).body
            if isinstance(body, Reaction) and body.target:
                latest[(body.target, message.sender)] = body.emoji
        result: dict[str, list[tuple[str, str]]] = {}
        for (target, sender), emoji in latest.items():
            if emoji:
                result.setdefault(target, []).append((sender, emoji))
        return result

    def answered(self, peer: str) -> set[str]:
        """Titles of the replies this account already sent in a chat (to mark chosen buttons)."""
        titles = set()
        for message in self.messages(peer):
            body = parse(message.content).body
            if message.direction == "out" and isinstance(body, InteractiveReply):
                titles.add(body.id)
        return titles

    def delete_chat(self, peer: str) -> int:
        """Forget a chat's messages on this device only; returns how many were removed."""
        with self.store.transaction() as state:
            keys = [m.key for m in state.messages(HISTORY_SCAN) if m.conversation == peer]
            state.delete_messages(keys)
        return len(keys)

    # -- per-chat settings ------------------------------------------------------------------

    def unchecked_profiles(self) -> list[str]:
        return [chat.peer for chat in self.chats() if not chat.settings.profile_checked]

    async def check_profile(self, api: ServerApi, peer: str) -> ChatSettings:
        """Ask the platform whether `peer` is a business, and remember its verified name."""
        try:
            profile = await api.business_profile(peer)
        except SdkError as exc:
            if exc.code != ErrorCode.NOT_FOUND:
                raise
            return self.update(peer, profile_checked=True)
        return self.update(peer, profile_checked=True, verified_name=profile.verified_name)

    def settings(self, peer: str) -> ChatSettings:
        with self.store.transaction() as state:
            raw = state.get_json(f"chat/{peer}")
        return ChatSettings.from_dict(raw) if isinstance(raw, dict) else ChatSettings()

    def update(self, peer: str, **changes: Any) -> ChatSettings:
        with self.store.transaction() as state:
            raw = state.get_json(f"chat/{peer}")
            settings = ChatSettings.from_dict(raw) if isinstance(raw, dict) else ChatSettings()
            for key, value in changes.items():
                if key not in ChatSettings.__dataclass_fields__:
                    raise ValueError(f"unknown chat setting {key!r}")
                setattr(settings, key, value)
            state.put_json(f"chat/{peer}", settings.to_dict())
        return settings
