"""Response bodies of `/messages` and the webhook payloads Tidings emits, shaped as Meta's.

Webhooks carry the superset clients need (reference/cloud-api.md, Appendix): the legacy fields
plus `contacts[0].user_id` on inbound messages and a `contacts` array on status updates (pywa
4.x drops updates without them; older clients ignore the extra keys). Timestamps are unix
seconds as *strings*; WhatsApp ids are E.164 without '+'.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from tidings.business_api.graph_errors import GraphCode, async_error

Timestamp = int | float | datetime


def _wa(number: str) -> str:
    return number.removeprefix("+")


def unix_text(ts: Timestamp) -> str:
    """A timestamp as Meta writes it in webhooks: whole unix seconds, as a string."""
    seconds = ts.timestamp() if isinstance(ts, datetime) else ts
    return str(int(seconds))


# --- responses --------------------------------------------------------------------------------

SUCCESS: Final[dict[str, bool]] = {"success": True}


def success() -> dict[str, bool]:
    """A fresh `{"success": true}` (read receipts, typing indicators, deletes)."""
    return {"success": True}


def send_response(
    to_input: str, wa_id: str, message_id: str, message_status: str | None = None
) -> dict[str, Any]:
    """The 200 body of an accepted send. `wa_id` may be given as E.164; the '+' is dropped."""
    message: dict[str, Any] = {"id": message_id}
    if message_status is not None:
        message["message_status"] = message_status
    return {
        "messaging_product": "whatsapp",
        "contacts": [{"input": to_input, "wa_id": _wa(wa_id)}],
        "messages": [message],
    }


# --- envelope and values ----------------------------------------------------------------------


def envelope(
    waba_id: str, field: str, value: dict[str, Any], time: Timestamp | None = None
) -> dict[str, Any]:
    """`{"object": "whatsapp_business_account", "entry": [...]}` around one change."""
    entry: dict[str, Any] = {"id": waba_id}
    if time is not None:
        entry["time"] = int(time.timestamp() if isinstance(time, datetime) else time)
    entry["changes"] = [{"value": value, "field": field}]
    return {"object": "whatsapp_business_account", "entry": [entry]}


def _metadata(phone_number_id: str, display_phone_number: str) -> dict[str, str]:
    return {"display_phone_number": _wa(display_phone_number), "phone_number_id": phone_number_id}


def inbound_message_value(
    *,
    phone_number_id: str,
    display_phone_number: str,
    wa_id: str,
    profile_name: str | None,
    user_id: str | None,
    message: dict[str, Any],
) -> dict[str, Any]:
    """The `value` of a `messages` change that carries one customer message."""
    contact: dict[str, Any] = {"profile": {"name": profile_name or ""}, "wa_id": _wa(wa_id)}
    if user_id is not None:
        contact["user_id"] = user_id
    return {
        "messaging_product": "whatsapp",
        "metadata": _metadata(phone_number_id, display_phone_number),
        "contacts": [contact],
        "messages": [message],
    }


def status_value(
    *,
    phone_number_id: str,
    display_phone_number: str,
    status: dict[str, Any],
    wa_id: str,
    user_id: str | None,
) -> dict[str, Any]:
    """The `value` of a `messages` change that carries one status update."""
    contact: dict[str, Any] = {"wa_id": _wa(wa_id)}
    if user_id is not None:
        contact["user_id"] = user_id
    return {
        "messaging_product": "whatsapp",
        "metadata": _metadata(phone_number_id, display_phone_number),
        "contacts": [contact],
        "statuses": [status],
    }


def status_object(
    message_id: str,
    status: str,
    timestamp: Timestamp,
    recipient_id: str,
    biz_opaque_callback_data: str | None = None,
    conversation: dict[str, Any] | None = None,
    pricing: dict[str, Any] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One `statuses[]` entry: sent, delivered, read, failed or played."""
    out: dict[str, Any] = {
        "id": message_id,
        "status": status,
        "timestamp": unix_text(timestamp),
        "recipient_id": _wa(recipient_id),
    }
    if biz_opaque_callback_data is not None:
        out["biz_opaque_callback_data"] = biz_opaque_callback_data
    if conversation is not None:
        out["conversation"] = conversation
    if pricing is not None:
        out["pricing"] = pricing
    if errors:
        out["errors"] = errors
    return out


# --- inbound message objects ------------------------------------------------------------------


def message_context(from_wa_id: str, message_id: str) -> dict[str, str]:
    """`context` of a reply or a tap: who sent the quoted message (the business) and its id."""
    return {"from": _wa(from_wa_id), "id": message_id}


def inbound_message(
    *,
    from_wa_id: str,
    message_id: str,
    timestamp: Timestamp,
    type: str,
    content: Any,
    context: dict[str, Any] | None = None,
    referral: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One `messages[]` entry; `content` goes under the key named by `type`."""
    out: dict[str, Any] = {}
    if context is not None:
        out["context"] = context
    out |= {"from": _wa(from_wa_id), "id": message_id, "timestamp": unix_text(timestamp)}
    if referral is not None:
        out["referral"] = referral
    out["type"] = type
    out[type] = content
    return out


def inbound_text(
    *,
    from_wa_id: str,
    message_id: str,
    timestamp: Timestamp,
    body: str,
    context: dict[str, Any] | None = None,
    referral: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return inbound_message(
        from_wa_id=from_wa_id,
        message_id=message_id,
        timestamp=timestamp,
        type="text",
        content={"body": body},
        context=context,
        referral=referral,
    )


def inbound_media(
    kind: str,
    *,
    from_wa_id: str,
    message_id: str,
    timestamp: Timestamp,
    media_id: str,
    mime_type: str,
    sha256: str,
    caption: str | None = None,
    filename: str | None = None,
    voice: bool | None = None,
    url: str | None = None,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An image, video, audio, document or sticker message (`kind`)."""
    media: dict[str, Any] = {"id": media_id, "mime_type": mime_type, "sha256": sha256}
    if caption is not None:
        media["caption"] = caption
    if filename is not None:
        media["filename"] = filename
    if voice is not None:
        media["voice"] = voice
    if url is not None:
        media["url"] = url
    return inbound_message(
        from_wa_id=from_wa_id,
        message_id=message_id,
        timestamp=timestamp,
        type=kind,
        content=media,
        context=context,
    )


def inbound_location(
    *,
    from_wa_id: str,
    message_id: str,
    timestamp: Timestamp,
    latitude: float,
    longitude: float,
    name: str | None = None,
    address: str | None = None,
    url: str | None = None,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A shared location; the answer to a location request carries `context`."""
    location: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
    for key, value in (("name", name), ("address", address), ("url", url)):
        if value is not None:
            location[key] = value
    return inbound_message(
        from_wa_id=from_wa_id,
        message_id=message_id,
        timestamp=timestamp,
        type="location",
        content=location,
        context=context,
    )


def inbound_contacts(
    *,
    from_wa_id: str,
    message_id: str,
    timestamp: Timestamp,
    contacts: list[dict[str, Any]],
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Shared contact cards, in the same shape as outbound `contacts`."""
    return inbound_message(
        from_wa_id=from_wa_id,
        message_id=message_id,
        timestamp=timestamp,
        type="contacts",
        content=contacts,
        context=context,
    )


def inbound_reaction(
    *,
    from_wa_id: str,
    message_id: str,
    timestamp: Timestamp,
    reacted_message_id: str,
    emoji: str,
) -> dict[str, Any]:
    """A reaction to `reacted_message_id`; an empty `emoji` removes it."""
    return inbound_message(
        from_wa_id=from_wa_id,
        message_id=message_id,
        timestamp=timestamp,
        type="reaction",
        content={"message_id": reacted_message_id, "emoji": emoji},
    )


def inbound_button_reply(
    *,
    from_wa_id: str,
    message_id: str,
    timestamp: Timestamp,
    button_id: str,
    title: str,
    context: dict[str, Any],
) -> dict[str, Any]:
    """A tap on a reply button of an interactive message."""
    return inbound_message(
        from_wa_id=from_wa_id,
        message_id=message_id,
        timestamp=timestamp,
        type="interactive",
        content={"type": "button_reply", "button_reply": {"id": button_id, "title": title}},
        context=context,
    )


def inbound_list_reply(
    *,
    from_wa_id: str,
    message_id: str,
    timestamp: Timestamp,
    row_id: str,
    title: str,
    description: str | None = None,
    context: dict[str, Any],
) -> dict[str, Any]:
    """A row picked from a list message."""
    row: dict[str, Any] = {"id": row_id, "title": title}
    if description is not None:
        row["description"] = description
    return inbound_message(
        from_wa_id=from_wa_id,
        message_id=message_id,
        timestamp=timestamp,
        type="interactive",
        content={"type": "list_reply", "list_reply": row},
        context=context,
    )


def inbound_button(
    *,
    from_wa_id: str,
    message_id: str,
    timestamp: Timestamp,
    payload: str,
    text: str,
    context: dict[str, Any],
) -> dict[str, Any]:
    """A tap on a quick-reply button of a *template* message."""
    return inbound_message(
        from_wa_id=from_wa_id,
        message_id=message_id,
        timestamp=timestamp,
        type="button",
        content={"payload": payload, "text": text},
        context=context,
    )


def inbound_unsupported(
    *,
    from_wa_id: str,
    message_id: str,
    timestamp: Timestamp,
    details: str = "Message type is currently not supported.",
) -> dict[str, Any]:
    """A message the platform cannot represent, with the 131051 error Meta attaches."""
    error = async_error(GraphCode.UNSUPPORTED_MESSAGE_TYPE, details, title="Message type unknown")
    error.pop("href")  # Meta's inbound example carries no href
    return {
        "from": _wa(from_wa_id),
        "id": message_id,
        "timestamp": unix_text(timestamp),
        "errors": [error],
        "type": "unsupported",
    }
