"""Who may call the Business API: bearer system-user tokens, scoped to one business."""

from __future__ import annotations

from fastapi import Request

from tidings.business.service import (
    MANAGEMENT,
    MESSAGING,
    BusinessCaller,
    BusinessService,
    PhoneInfo,
)


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    # Graph also takes the token as a query parameter; some clients use it for downloads.
    return request.query_params.get("access_token") or None


def businesses_of(request: Request) -> BusinessService:
    service: BusinessService = request.app.state.businesses
    return service


async def business_caller(request: Request) -> BusinessCaller:
    return await businesses_of(request).authenticate(bearer(request))


async def messaging_phone(request: Request, phone_number_id: str) -> PhoneInfo:
    """The caller's phone number, for an endpoint that sends or reads messages (looked up once
    per request: the Idempotency-Key wrapper asks before the send handler does)."""
    known: dict[str, PhoneInfo] | None = getattr(request.state, "messaging_phones", None)
    if known is None:
        known = request.state.messaging_phones = {}
    phone = known.get(phone_number_id)
    if phone is None:
        phone = await businesses_of(request).phone_of_token(
            bearer(request), phone_number_id, MESSAGING
        )
        known[phone_number_id] = phone
    return phone


async def require_waba_access(request: Request, waba_id: str) -> None:
    """The caller manages `waba_id` (webhook subscriptions, templates)."""
    caller = await business_caller(request)
    caller.require(MANAGEMENT)
    await businesses_of(request).check_waba(caller, waba_id)
