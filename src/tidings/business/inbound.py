"""Turn what a customer's client sent (decrypted E2E content) into a Cloud API inbound message.

The content comes from an untrusted client, so only known fields of known types are copied,
with their types checked; anything else becomes an `unsupported` message with error 131051,
as Meta reports types it cannot handle.

Media (image, video, audio, document, sticker) carries an attachment descriptor; the platform
has already downloaded and stored the file (business/media.py) and passes what the webhook
reports about it (`media`: id, mime_type, sha256), or why it could not (`media_error`).
"""

from __future__ import annotations

from typing import Any

_MEDIA = ("image", "video", "audio", "document", "sticker")


def _str(value: Any, limit: int = 4096) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _text_body(content: dict[str, Any]) -> str | None:
    text = content.get("text")
    if isinstance(text, dict):
        return _str(text.get("body"))
    return _str(text)


def _interactive(inner: Any) -> dict[str, Any] | None:
    if not isinstance(inner, dict):
        return None
    kind = inner.get("type")
    if kind == "button_reply" and isinstance(inner.get("button_reply"), dict):
        reply = inner["button_reply"]
        if _str(reply.get("id"), 256) is None:
            return None
        return {
            "type": kind,
            "button_reply": {
                "id": _str(reply.get("id"), 256),
                "title": _str(reply.get("title"), 20) or "",
            },
        }
    if kind == "list_reply" and isinstance(inner.get("list_reply"), dict):
        reply = inner["list_reply"]
        if _str(reply.get("id"), 200) is None:
            return None
        row = {"id": _str(reply.get("id"), 200), "title": _str(reply.get("title"), 24) or ""}
        if _str(reply.get("description"), 72) is not None:
            row["description"] = _str(reply.get("description"), 72)
        return {"type": kind, "list_reply": row}
    return None


def _button(inner: Any) -> dict[str, Any] | None:
    """A quick-reply tap on a template. Meta reports the button's text as the payload when
    the send gave none; a client that leaves it out means the same."""
    if not isinstance(inner, dict):
        return None
    text = _str(inner.get("text"), 256) or ""
    payload = _str(inner.get("payload"), 256) or text
    return {"payload": payload, "text": text} if payload else None


def _location(inner: Any) -> dict[str, Any] | None:
    if not isinstance(inner, dict):
        return None
    latitude, longitude = _number(inner.get("latitude")), _number(inner.get("longitude"))
    if (
        latitude is None
        or longitude is None
        or not (-90 <= latitude <= 90)
        or not (-180 <= longitude <= 180)
    ):
        return None
    result: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
    for key in ("name", "address", "url"):
        if _str(inner.get(key), 1000) is not None:
            result[key] = _str(inner.get(key), 1000)
    return result


def _reaction(inner: Any, quoted_wamid: str | None) -> dict[str, Any] | None:
    if not isinstance(inner, dict) or quoted_wamid is None:
        return None
    emoji = _str(inner.get("emoji"), 16)
    return None if emoji is None else {"message_id": quoted_wamid, "emoji": emoji}


def _media(kind: str, inner: Any, stored: dict[str, Any] | None) -> dict[str, Any] | None:
    if stored is None or not isinstance(inner, dict):
        return None
    body = dict(stored)
    if kind in ("image", "video", "document") and _str(inner.get("caption"), 1024):
        body["caption"] = _str(inner.get("caption"), 1024)
    if kind == "document" and _str(inner.get("filename"), 255):
        body["filename"] = _str(inner.get("filename"), 255)
    if kind == "audio" and isinstance(inner.get("voice"), bool):
        body["voice"] = inner["voice"]
    return body


def _unsupported(message: dict[str, Any], code: int, title: str, details: str) -> dict[str, Any]:
    message["type"] = "unsupported"
    message["errors"] = [
        {"code": code, "title": title, "message": title, "error_data": {"details": details}}
    ]
    return message


def to_cloud_message(
    content: dict[str, Any],
    *,
    wamid: str,
    sender: str,
    ts: int,
    business: str,
    quoted_wamid: str | None,
    media: dict[str, Any] | None = None,
    media_error: tuple[int, str] | None = None,
) -> dict[str, Any]:
    """The `messages[]` item of a webhook for one inbound message."""
    message: dict[str, Any] = {"from": sender.lstrip("+"), "id": wamid, "timestamp": str(ts)}
    kind = content.get("type") if isinstance(content.get("type"), str) else None
    if kind is None and isinstance(content.get("text"), str):
        kind = "text"  # person-to-person clients send {"type": "text", "text": "..."}
    if quoted_wamid is not None:
        message["context"] = {"from": business, "id": quoted_wamid}
    body: dict[str, Any] | None = None
    if kind == "text":
        text = _text_body(content)
        body = {"body": text} if text is not None else None
    elif kind == "interactive":
        body = _interactive(content.get("interactive"))
    elif kind == "location":
        body = _location(content.get("location"))
    elif kind == "reaction":
        body = _reaction(content.get("reaction"), quoted_wamid)
        message.pop("context", None)  # a reaction names its target inside the reaction
    elif kind == "button":
        body = _button(content.get("button"))
    elif kind in _MEDIA:
        body = _media(kind, content.get(kind), media)
        if body is None and media_error is not None:
            code, details = media_error
            title = "Media download error" if code == 131052 else "Message type unknown"
            return _unsupported(message, code, title, details)
    if body is None or kind is None:
        return _unsupported(
            message, 131051, "Message type unknown", "Message type is currently not supported."
        )
    message["type"] = kind
    message[kind] = body
    referral = referral_of(content)
    if referral is not None:
        message["referral"] = referral
    return message


# Where a conversation the customer starts can come from (Meta's Click-to-WhatsApp `ad` and
# `post`, plus this platform's own business `link` and `qr` code entry points).
ENTRY_POINT_SOURCES = frozenset({"link", "qr", "ad", "post"})


def referral_of(content: dict[str, Any]) -> dict[str, str] | None:
    """The entry point a customer's message carries, as the webhook's `referral` object.

    A client that opens a chat from the business's link or QR code puts
    `"referral": {"source_type": "link"|"qr"|"ad"|"post", "source_id"?, "source_url"?,
    "headline"?, "body"?}` into the content of the message it sends first. Unknown keys are
    dropped; without a known `source_type` there is no referral.
    """
    raw = content.get("referral")
    source_type = raw.get("source_type") if isinstance(raw, dict) else None
    if not isinstance(source_type, str) or source_type not in ENTRY_POINT_SOURCES:
        return None
    assert isinstance(raw, dict)
    referral = {"source_type": source_type}
    for key, limit in (("source_id", 200), ("source_url", 2000), ("headline", 200), ("body", 1024)):
        value = _str(raw.get(key), limit)
        if value:
            referral[key] = value
    return referral
