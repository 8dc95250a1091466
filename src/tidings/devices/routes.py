"""HTTP routes of accounts and devices: registration, keys, device lists, linking."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from tidings.accounts.service import AccountService
from tidings.bus.base import Bus
from tidings.devices.linking import LinkService, link_topic
from tidings.devices.service import DeviceContext, DeviceService
from tidings.protocol import api

router = APIRouter(prefix="/v1")


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def devices_of(request: Request) -> DeviceService:
    service: DeviceService = request.app.state.devices
    return service


async def current_device(request: Request) -> DeviceContext:
    return await devices_of(request).authenticate(bearer_token(request))


async def current_device_or_pending(request: Request) -> DeviceContext:
    return await devices_of(request).authenticate(bearer_token(request), allow_pending=True)


Device = Annotated[DeviceContext, Depends(current_device)]
AnyDevice = Annotated[DeviceContext, Depends(current_device_or_pending)]


@router.post("/verification", status_code=202)
async def request_verification(
    body: api.VerificationRequest, request: Request
) -> api.VerificationRequested:
    accounts: AccountService = request.app.state.accounts
    phone, ttl = await accounts.request_code(body.phone)
    return api.VerificationRequested(phone=phone, expires_in=ttl)


@router.post("/accounts", status_code=201)
async def register(body: api.RegisterRequest, request: Request) -> api.RegisterResponse:
    return await devices_of(request).register(body)


@router.get("/whoami")
async def whoami(device: AnyDevice, request: Request) -> api.WhoAmI:
    listing = await devices_of(request).device_list(device, device.phone)
    return api.WhoAmI(
        phone=device.phone,
        device_id=device.device_id,
        primary=device.primary,
        account_key=listing.account_key,
    )


@router.put("/keys")
async def upload_keys(
    body: api.UploadKeysRequest, device: AnyDevice, request: Request
) -> api.KeyStatus:
    return await devices_of(request).upload_keys(device, body)


@router.get("/keys")
async def key_status(device: AnyDevice, request: Request) -> api.KeyStatus:
    return await devices_of(request).key_status(device)


@router.post("/keys/claim")
async def claim_keys(
    body: api.ClaimKeysRequest, device: Device, request: Request
) -> api.ClaimKeysResponse:
    return await devices_of(request).claim_keys(device, body)


@router.get("/accounts/{phone}/devices")
async def device_list(phone: str, device: AnyDevice, request: Request) -> api.DeviceListResponse:
    return await devices_of(request).device_list(device, phone)


@router.put("/devices/list")
async def publish_device_list(
    body: api.PublishDeviceListRequest, device: Device, request: Request
) -> dict[str, int]:
    version = await devices_of(request).publish_device_list(device, body.signed_list)
    return {"version": version}


# -- linking ----------------------------------------------------------------------------------


def links_of(request: Request) -> LinkService:
    service: LinkService = request.app.state.links
    return service


@router.post("/links", status_code=201)
async def open_link(device: Device, request: Request) -> api.LinkCreated:
    return await links_of(request).open(device)


@router.post("/links/{link_id}/join", status_code=201)
async def join_link(link_id: str, body: api.LinkJoinRequest, request: Request) -> api.LinkJoined:
    return await links_of(request).join(link_id, body)


@router.get("/links/{link_id}")
async def link_state(
    link_id: str,
    device: AnyDevice,
    request: Request,
    wait: Annotated[float, Query(ge=0, le=60)] = 0,
    since: Annotated[str | None, Query(max_length=16)] = None,
) -> api.LinkState:
    """With `wait`, hold the request until the status differs from `since` (long poll)."""
    links = links_of(request)
    bus: Bus = request.app.state.bus
    async with bus.subscribe(link_topic(link_id)) as subscription:
        state = await links.state(link_id, device)
        if wait and since is not None and state.status == since:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while state.status == since and (remaining := deadline - loop.time()) > 0:
                await subscription.get(timeout=remaining)
                state = await links.state(link_id, device)
        return state


@router.post("/links/{link_id}/approve")
async def approve_link(
    link_id: str, body: api.LinkApproveRequest, device: Device, request: Request
) -> api.LinkState:
    return await links_of(request).approve(link_id, device, body)


@router.delete("/links/{link_id}")
async def cancel_link(link_id: str, device: Device, request: Request) -> api.LinkState:
    return await links_of(request).cancel(link_id, device)
