"""Cloud-API-compatible routes: `/{version}/{phone_number_id}/messages` and the phone node.

Every path works with any `vNN.N` version prefix and with none, as real clients send both.
Errors are rendered in the Graph envelope by the app (see app.py).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from fastapi import APIRouter, Request

from tidings.business.media_types import MEDIA_KINDS
from tidings.business.messaging import BusinessMessaging
from tidings.business.policy_gate import TemplateUse
from tidings.business.service import MANAGEMENT, PhoneInfo
from tidings.business_api import wire
from tidings.business_api.auth import business_caller, businesses_of, messaging_phone
from tidings.business_api.graph_errors import GraphError
from tidings.business_api.idempotent import idempotent
from tidings.business_api.media_routes import check_sendable_media, media_node
from tidings.business_api.paths import check_path
from tidings.business_api.pricing_routes import waba_node
from tidings.kit.phone import InvalidPhoneNumber, normalize_phone
from tidings.limits.service import MessagingLimits

router = APIRouter()


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GraphError(100, f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise GraphError(100, "The request body must be a JSON object")
    return body


def messaging_of(request: Request) -> BusinessMessaging:
    service: BusinessMessaging = request.app.state.business_messaging
    return service


class TemplateSending(Protocol):
    """Checks a `type: template` send against the approved version and renders it (the
    templates domain sits above this adapter, so app.py sets `app.state.template_sending`)."""

    async def __call__(
        self, request: Request, phone: PhoneInfo, payload: dict[str, Any]
    ) -> tuple[dict[str, Any], TemplateUse]: ...


def template_sending_of(request: Request) -> TemplateSending:
    sending: TemplateSending = request.app.state.template_sending
    return sending


async def send_message(request: Request, phone_number_id: str, version: str | None = None) -> Any:
    check_path(version, phone_number_id)
    phone = await messaging_phone(request, phone_number_id)
    parsed = wire.parse_messages_request(await json_body(request))
    messaging = messaging_of(request)
    if isinstance(parsed, wire.ReadRequest):
        await messaging.mark_read(phone, parsed.message_id, parsed.typing_indicator)
        return wire.SUCCESS
    parsed.require_supported()
    message = parsed.message
    if message.type in MEDIA_KINDS:
        await check_sendable_media(request, phone, message.type, message.payload)
    try:
        customer = normalize_phone(wire.candidate_e164(message.to_input))
    except InvalidPhoneNumber as exc:
        raise GraphError(100, f"Invalid parameter: to: {exc}") from exc
    if customer == phone.phone:
        raise GraphError(131021, "Recipient cannot be sender.")
    payload, template = message.payload, None
    if message.type == "template":
        payload, template = await template_sending_of(request)(request, phone, message.payload)
    wamid = await messaging.accept(
        phone,
        customer,
        message.type,
        payload,
        context_wamid=message.context_message_id,
        callback_data=message.biz_opaque_callback_data,
        template=template,
    )
    return wire.send_response(message.to_input, customer.lstrip("+"), wamid)


# An Idempotency-Key header makes a retried send answer the first response (idempotent.py).
send_message_once = idempotent(send_message)
router.add_api_route("/{version}/{phone_number_id}/messages", send_message_once, methods=["POST"])
router.add_api_route("/{phone_number_id}/messages", send_message_once, methods=["POST"])


async def phone_node(request: Request, phone_number_id: str, version: str | None = None) -> Any:
    """`GET /{phone_number_id}`: the phone number as Graph describes it."""
    check_path(version, phone_number_id)
    phone = await messaging_phone(request, phone_number_id)
    # The signals domain rates numbers; it sits above this adapter (wired by app.py).
    quality = getattr(request.app.state, "phone_quality", None)
    rating = "GREEN" if quality is None else str(await quality.current(phone))
    limits: MessagingLimits = request.app.state.messaging_limits
    in_force = await limits.phone_limits(phone)
    return {
        "verified_name": phone.verified_name,
        "display_phone_number": phone.display_phone_number,
        "id": phone.phone_number_id,
        "quality_rating": rating,
        "code_verification_status": "VERIFIED",
        "platform_type": "CLOUD_API",
        "throughput": {"level": str(in_force.throughput_level)},
        # The business's limit, under Meta's current name and the deprecated one.
        "whatsapp_business_manager_messaging_limit": str(in_force.tier),
        "messaging_limit_tier": str(in_force.tier),
    }


async def _template_node(request: Request, node_id: str, action: str) -> Any:
    """A message template's node, if the id is one. The templates domain sits above this
    adapter, so its handlers come in through `app.state.template_nodes` (set by app.py)."""
    nodes = getattr(request.app.state, "template_nodes", None)
    if nodes is None or not await nodes.exists(request, node_id):
        return None
    handler = nodes.get if action == "get" else nodes.edit
    return await handler(request, node_id)


async def get_node(request: Request, node_id: str, version: str | None = None) -> Any:
    """`GET /{id}`: one path for every node type, so look up what the id is, as Graph does
    (reference/cloud-api.md §1): the caller's media, else the caller's WABA (pricing
    analytics), else a phone number (or "no such object", the same answer for another
    business's media or WABA)."""
    check_path(version, node_id)
    template = await _template_node(request, node_id, "get")
    if template is not None:
        return template
    media = await media_node(request, node_id)
    if media is not None:
        return media
    waba = await waba_node(request, node_id)
    if waba is not None:
        return waba
    return await phone_node(request, node_id)


router.add_api_route("/{version}/{node_id}", get_node, methods=["GET"])
router.add_api_route("/{node_id}", get_node, methods=["GET"])


async def configure_phone(
    request: Request, phone_number_id: str, version: str | None = None
) -> Any:
    """`POST /{phone_number_id}` with `webhook_configuration`: this number's webhook override
    (verified with the GET handshake first; an empty URL removes it)."""
    check_path(version, phone_number_id)
    template = await _template_node(request, phone_number_id, "edit")
    if template is not None:
        return template
    caller = await business_caller(request)
    caller.require(MANAGEMENT)
    phone = await businesses_of(request).phone_for(caller, phone_number_id)
    body = await json_body(request)
    config = body.get("webhook_configuration")
    if not isinstance(config, dict):
        raise GraphError(131008, "The parameter webhook_configuration is required.")
    url = config.get("override_callback_uri")
    token = config.get("verify_token")
    if not all(value is None or isinstance(value, str) for value in (url, token)):
        raise GraphError(100, "override_callback_uri and verify_token must be strings")
    webhooks = request.app.state.webhooks  # the webhooks domain sits above this adapter
    await webhooks.set_phone_override(phone.phone_number_id, phone.waba_id, url or None, token)
    return wire.SUCCESS


router.add_api_route("/{version}/{phone_number_id}", configure_phone, methods=["POST"])
router.add_api_route("/{phone_number_id}", configure_phone, methods=["POST"])
