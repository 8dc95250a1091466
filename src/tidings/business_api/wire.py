"""The Cloud API wire layer in one import: request parsing, responses, webhook builders.

Pure: no database, no HTTP. The pieces live in

- `wire_base`         the base model, media references, Meta's limits, `Unsupported`
- `wire_messages`     `/messages` request models, `parse_messages_request`, recipients
- `wire_interactive`  interactive objects (buttons, list, CTA URL, location request)
- `wire_webhooks`     send response, `{"success": true}`, webhook envelopes and objects
"""

from __future__ import annotations

from tidings.business_api.wire_base import Unsupported
from tidings.business_api.wire_interactive import (
    SUPPORTED_INTERACTIVE,
    UNSUPPORTED_INTERACTIVE,
    parse_interactive,
)
from tidings.business_api.wire_messages import (
    SUPPORTED_TYPES,
    UNSUPPORTED_TYPES,
    OutboundMessage,
    ReadRequest,
    SendRequest,
    candidate_e164,
    is_single_emoji,
    parse_messages_request,
    recipient_e164,
    wa_id_of,
)
from tidings.business_api.wire_webhooks import (
    SUCCESS,
    envelope,
    inbound_button,
    inbound_button_reply,
    inbound_contacts,
    inbound_list_reply,
    inbound_location,
    inbound_media,
    inbound_message,
    inbound_message_value,
    inbound_reaction,
    inbound_text,
    inbound_unsupported,
    message_context,
    send_response,
    status_object,
    status_value,
    success,
    unix_text,
)

__all__ = [
    "SUCCESS",
    "SUPPORTED_INTERACTIVE",
    "SUPPORTED_TYPES",
    "UNSUPPORTED_INTERACTIVE",
    "UNSUPPORTED_TYPES",
    "OutboundMessage",
    "ReadRequest",
    "SendRequest",
    "Unsupported",
    "candidate_e164",
    "envelope",
    "inbound_button",
    "inbound_button_reply",
    "inbound_contacts",
    "inbound_list_reply",
    "inbound_location",
    "inbound_media",
    "inbound_message",
    "inbound_message_value",
    "inbound_reaction",
    "inbound_text",
    "inbound_unsupported",
    "is_single_emoji",
    "message_context",
    "parse_interactive",
    "parse_messages_request",
    "recipient_e164",
    "send_response",
    "status_object",
    "status_value",
    "success",
    "unix_text",
    "wa_id_of",
]
