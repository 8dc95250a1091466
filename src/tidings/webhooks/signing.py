"""The bytes of a webhook and their signature, exactly as Meta's Cloud API produces them.

The body is JSON with every non-ASCII character escaped (`\\u00e9`, surrogate pairs for emoji):
some receivers re-serialize before checking the signature, and escaped output survives that.
The signature is `sha256=<lowercase hex HMAC-SHA256(app secret, body)>` over exactly the bytes
sent. Each event's body is built once, at enqueue, and stored, so retries and replays send
byte-identical bodies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_ID_HEADER = "X-Tidings-Event-Id"
ENVELOPE_OBJECT = "whatsapp_business_account"


def envelope(
    waba_id: str, field: str, value: dict[str, Any], time: int | None = None
) -> dict[str, Any]:
    """Meta's envelope for one change. `time` is set for non-`messages` fields, as Meta does."""
    entry: dict[str, Any] = {"id": waba_id}
    if time is not None:
        entry["time"] = time
    entry["changes"] = [{"value": value, "field": field}]
    return {"object": ENVELOPE_OBJECT, "entry": [entry]}


def encode_body(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def sign(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` header value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(secret: str, body: bytes, header: str | None) -> bool:
    """What a receiver does: recompute over the raw bytes and compare in constant time."""
    if not header:
        return False
    return hmac.compare_digest(sign(secret, body), header.strip())
