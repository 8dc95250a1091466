"""`GET /v1/business-profiles/{phone}`: a business number's verified name, for customers'
clients (the chat list shows it beside a check mark). Any registered device may ask: like
WhatsApp's verified names, it is public; a number no business owns answers 404."""

from __future__ import annotations

from fastapi import APIRouter, Request

from tidings.business.service import BusinessService
from tidings.devices.routes import AnyDevice
from tidings.errors import NotFound
from tidings.kit.phone import normalize_phone
from tidings.protocol import api

router = APIRouter(prefix="/v1")


@router.get("/business-profiles/{phone}")
async def business_profile(phone: str, _device: AnyDevice, request: Request) -> api.BusinessProfile:
    businesses: BusinessService = request.app.state.businesses
    name = await businesses.verified_name_of(phone)
    if name is None:
        raise NotFound(f"{phone} is not a business number")
    return api.BusinessProfile(phone=normalize_phone(phone), verified_name=name)
