"""Beyond Meta, on the Graph surface: the consent ledger API and send preflight.

- `POST /{version}/{phone_number_id}/consents` records an opt-in (with the wording shown) or
  an opt-out the business collected; `GET` exports the ledger as JSON evidence.
- `GET /{version}/{phone_number_id}/preflight?to=...&template=...&language=...` answers
  whether a message could be sent now, every reason it could not, and the earliest time it
  could, without sending or counting anything.

Errors are Graph errors (the app renders every AppError on these paths in Graph's envelope).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from fastapi import APIRouter, Request

from tidings.business.messaging import BusinessMessaging
from tidings.business.policy_gate import SendContext, TemplateUse
from tidings.business_api.auth import messaging_phone
from tidings.business_api.graph_errors import GraphError
from tidings.business_api.paths import check_path
from tidings.business_api.routes import json_body
from tidings.kit.phone import InvalidPhoneNumber, normalize_phone
from tidings.signals.service import SignalService

router = APIRouter()

MAX_PAGE = 1000


class TemplateLookup(Protocol):
    async def __call__(self, waba_id: str, name: str, language: str | None) -> TemplateUse: ...


def signals_of(request: Request) -> SignalService:
    service: SignalService = request.app.state.signals
    return service


def customer_of(raw: Any, field: str) -> str:
    if raw is None or raw == "":
        raise GraphError(131008, f"The parameter {field} is required.")
    if not isinstance(raw, str):
        raise GraphError(100, f"Param {field} must be a string.")
    try:
        return normalize_phone(raw if raw.startswith("+") else f"+{raw}")
    except InvalidPhoneNumber as exc:
        raise GraphError(100, f"Invalid parameter: {field}: {exc}") from exc


def _optional_text(body: dict[str, Any], field: str, limit: int) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise GraphError(100, f"Param {field} must be a string of at most {limit} characters.")
    return value


def _timestamp(raw: Any) -> datetime | None:
    """Unix seconds (number or numeric string, as Graph writes timestamps), or None."""
    if raw is None:
        return None
    if isinstance(raw, str) and raw.isdigit():
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
        raise GraphError(100, "Param timestamp must be unix seconds.")
    try:
        return datetime.fromtimestamp(raw, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise GraphError(100, "Param timestamp is out of range.") from exc


async def record_consent(
    request: Request, phone_number_id: str, version: str | None = None
) -> dict[str, Any]:
    check_path(version, phone_number_id)
    phone = await messaging_phone(request, phone_number_id)
    body = await json_body(request)
    customer = customer_of(body.get("wa_id", body.get("to")), "wa_id")
    for field in ("category", "action", "actor"):
        if not body.get(field):
            raise GraphError(131008, f"The parameter {field} is required.")
        if not isinstance(body[field], str):
            raise GraphError(100, f"Param {field} must be a string.")
    actor = _optional_text(body, "actor", 200) or ""
    entry = await signals_of(request).record_consent(
        phone,
        customer,
        category=body["category"],
        action=body["action"],
        actor=actor,
        wording=_optional_text(body, "wording", 4096),
        at=_timestamp(body.get("timestamp")),
        detail=_optional_text(body, "detail", 200),
    )
    return {"success": True, "id": str(entry.id)}


async def export_consents(
    request: Request, phone_number_id: str, version: str | None = None
) -> dict[str, Any]:
    check_path(version, phone_number_id)
    phone = await messaging_phone(request, phone_number_id)
    query = request.query_params
    customer = customer_of(query["wa_id"], "wa_id") if query.get("wa_id") else None
    after = _bounded(query.get("after"), "after", 0, 2**62, 0)
    limit = _bounded(query.get("limit"), "limit", 1, MAX_PAGE, 100)
    entries = await signals_of(request).consent_evidence(phone, customer, after, limit)
    cursor = str(entries[-1].id) if entries else str(after)
    return {"data": [e.to_evidence() for e in entries], "paging": {"cursors": {"after": cursor}}}


def _bounded(raw: str | None, name: str, low: int, high: int, default: int) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise GraphError(100, f"Param {name} must be an integer from {low} to {high}.")
    return int(raw)


async def preflight(
    request: Request, phone_number_id: str, version: str | None = None
) -> dict[str, Any]:
    check_path(version, phone_number_id)
    phone = await messaging_phone(request, phone_number_id)
    query = request.query_params
    customer = customer_of(query.get("to"), "to")
    if customer == phone.phone:
        raise GraphError(131021, "Recipient cannot be sender.")
    template: TemplateUse | None = None
    if query.get("template"):
        lookup: TemplateLookup = request.app.state.template_lookup
        template = await lookup(phone.waba_id, query["template"], query.get("language") or None)
    messaging: BusinessMessaging = request.app.state.business_messaging
    now = signals_of(request).now()
    decision = await messaging.preflight(SendContext(phone, customer, template, now))
    answer: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "to": customer.lstrip("+"),
        "checked_at": now.isoformat(),
        **decision.to_dict(),
    }
    if template is not None:
        answer["template"] = {
            "id": template.template_id,
            "name": template.name,
            "language": template.language,
            "category": str(template.category),
            "status": template.status,
        }
    return answer


for prefix in ("/{version}/{phone_number_id}", "/{phone_number_id}"):
    router.add_api_route(f"{prefix}/consents", record_consent, methods=["POST"])
    router.add_api_route(f"{prefix}/consents", export_consents, methods=["GET"])
    router.add_api_route(f"{prefix}/preflight", preflight, methods=["GET"])
