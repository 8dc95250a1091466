"""The webhook values the business platform emits, in the Cloud API's shapes."""

from __future__ import annotations

from typing import Any

from tidings.business.models import BusinessMessage
from tidings.business.service import PhoneInfo
from tidings.business_api import wire
from tidings.business_api.graph_errors import async_error

# A message without a stored charge is a free-form answer inside the customer service window:
# free of charge, category "service". Others carry the charge their send was decided with.
_SERVICE_PRICING = {
    "billable": False,
    "pricing_model": "PMP",
    "category": "service",
    "type": "free_customer_service",
}
_ERROR_DETAILS = {
    131026: "Message undeliverable: the recipient is not registered on this network or has no"
    " active device.",
    131053: "Media upload error: the media id is unknown or expired, or the link could not be"
    " fetched or is not a supported type within its size limit.",
}


class CloudShapes:
    def status(
        self,
        phone: PhoneInfo,
        message: BusinessMessage,
        status: str,
        ts: int,
        extra: dict[str, Any],
    ) -> dict[str, Any]:
        wa_id = message.customer.lstrip("+")
        errors = None
        if extra.get("error"):
            code = int(extra["error"])
            details = extra.get("error_details") or _ERROR_DETAILS.get(code, "The message failed.")
            errors = [async_error(code, details)]
        priced = status in ("sent", "delivered") and message.type != "reaction"
        pricing = dict(extra.get("pricing") or _SERVICE_PRICING)
        origin = (
            "referral_conversion"
            if pricing["type"] == "free_entry_point"
            else str(pricing["category"])
        )
        item = wire.status_object(
            message.wamid,
            status,
            ts,
            wa_id,
            biz_opaque_callback_data=extra.get("callback"),
            conversation={"id": f"conv-{message.wamid[6:30]}", "origin": {"type": origin}}
            if priced
            else None,
            pricing=pricing if priced else None,
            errors=errors,
        )
        return wire.status_value(
            phone_number_id=phone.phone_number_id,
            display_phone_number=phone.display_phone_number,
            status=item,
            wa_id=wa_id,
            user_id=user_id(phone, message.customer),
        )

    def inbound(
        self, phone: PhoneInfo, message: dict[str, Any], customer: str, profile_name: str
    ) -> dict[str, Any]:
        return wire.inbound_message_value(
            phone_number_id=phone.phone_number_id,
            display_phone_number=phone.display_phone_number,
            wa_id=customer.lstrip("+"),
            profile_name=profile_name,
            user_id=user_id(phone, customer),
            message=message,
        )


def user_id(phone: PhoneInfo, customer: str) -> str:
    """A business-scoped user id (BSUID): stable per (business, customer), reveals neither."""
    import hashlib

    digest = hashlib.sha256(f"{phone.business_id}:{customer}".encode()).hexdigest()
    return f"US.{digest[:24]}"
