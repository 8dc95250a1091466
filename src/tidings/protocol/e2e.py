"""The plaintext inside every Olm message.

The sender and recipient ids live inside the encrypted payload so the server cannot redirect or
relabel ciphertext: the receiver compares them with what the server claimed and with the
Olm-authenticated sender key.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PlainKind = Literal["message", "session_reset", "dummy", "typing"]


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    phone: str
    device_id: int


class Plaintext(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    id: str
    ts: int
    sender: Address
    recipient: Address
    # The account the message was sent to. It equals recipient.phone, except in the copies a
    # sender's own other devices get, where it names the conversation they belong to.
    to: str
    kind: PlainKind = "message"
    content: dict[str, Any] = Field(default_factory=dict)
