"""What `DeviceClient.sync()` and `listen()` hand to callers, and what the history holds."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class IncomingMessage:
    """A decrypted message. `own` marks a copy of what this account sent from another device."""

    id: str
    sender: str
    sender_device: int
    to: str
    content: dict[str, Any]
    ts: int
    own: bool = False

    @property
    def text(self) -> str | None:
        return content_text(self.content)

    @property
    def conversation(self) -> str:
        """The other party: whom an own copy was sent to, else the sender."""
        return self.to if self.own else self.sender


@dataclass(frozen=True)
class ReceiptEvent:
    type: Literal["delivered", "read"]
    message_ids: tuple[str, ...]
    by: str
    by_device: int


@dataclass(frozen=True)
class TypingEvent:
    """The other party is typing (shown until their message arrives, or for 25 seconds)."""

    sender: str
    sender_device: int


@dataclass(frozen=True)
class DeviceListChanged:
    phone: str
    version: int
    device_ids: tuple[int, ...]


@dataclass(frozen=True)
class SecurityNotice:
    """Something the user should know: a contact's account key changed, a session was reset."""

    phone: str
    message: str


Event = IncomingMessage | ReceiptEvent | DeviceListChanged | SecurityNotice | TypingEvent

Direction = Literal["in", "out"]


@dataclass
class StoredMessage:
    """One message in the local history (sealed at rest)."""

    id: str
    conversation: str  # the other account's phone
    direction: Direction
    sender: str
    sender_device: int
    content: dict[str, Any]
    ts: int
    # out: "sending" | "sent" | "delivered" | "read"; in: "received" | "read"
    status: str
    delivered_to: list[str] = field(default_factory=list)
    read_by: list[str] = field(default_factory=list)
    # Per device, for message info: [{"type", "by", "device", "ts"}], first receipt of each.
    receipts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        """Ids are chosen by senders, so they are only unique per sending account."""
        return f"{self.sender}/{self.id}"

    @property
    def text(self) -> str | None:
        return content_text(self.content)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StoredMessage:
        return cls(**raw)

    def apply_receipt(
        self, kind: str, by: str, by_device: int | None = None, ts: int | None = None
    ) -> bool:
        """Record a receipt; True if the visible status moved forward."""
        before = self.status
        if by_device is not None and not any(
            r["type"] == kind and r["by"] == by and r["device"] == by_device for r in self.receipts
        ):
            self.receipts.append({"type": kind, "by": by, "device": by_device, "ts": ts})
        target = self.read_by if kind == "read" else self.delivered_to
        if by not in target:
            target.append(by)
        rank = {"sending": 0, "sent": 1, "received": 1, "delivered": 2, "read": 3}
        wanted = "read" if kind == "read" else ("delivered" if self.direction == "out" else before)
        if rank.get(wanted, 0) > rank.get(self.status, 0):
            self.status = wanted
        return self.status != before


def content_text(content: dict[str, Any]) -> str | None:
    """The text of a message: person-to-person `{"text": "..."}` or the Cloud API shape a
    business sends, `{"text": {"body": "..."}}` (and captions / interactive bodies)."""
    value = content.get("text")
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("body"), str):
        return str(value["body"])
    kind = content.get("type")
    inner = content.get(kind) if isinstance(kind, str) else None
    if isinstance(inner, dict):
        body = inner.get("body")
        if isinstance(body, dict) and isinstance(body.get("text"), str):
            return str(body["text"])  # interactive messages
        if isinstance(inner.get("caption"), str):
            return str(inner["caption"])
    return None
