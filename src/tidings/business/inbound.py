"""Turn what a customer's client sent (decrypted E2E content) into a Cloud API inbound message.

The content comes from an untrusted client, so only known fields of known types are copied,
with their types checked; anything else becomes an `unsupported` message with error 131051,
as Meta reports types it cannot handle.
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


def to_cloud_message(
    content: dict[str, Any],
    *,
    wamid: str,
    sender: str,
    ts: int,
    business: str,
    quoted_wamid: str | None,
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
    elif kind == "button" and isinstance(content.get("button"), dict):
        payload = _str(content["button"].get("payload"), 256)
        body = (
            {"payload": payload, "text": _str(content["button"].get("text"), 256) or ""}
            if payload
            else None
        )
    if body is None or kind is None or kind in _MEDIA:
        # Media from customers arrives with the media issue; until then it is reported as
        # unsupported rather than half-delivered.
        message["type"] = "unsupported"
        message["errors"] = [
            {
                "code": 131051,
                "title": "Message type unknown",
                "message": "Message type unknown",
                "error_data": {"details": "Message type is currently not supported."},
            }
        ]
        return message
    message["type"] = kind
    message[kind] = body
    return message
