"""HTTP routes of the mailbox: send, receipts, fetch, acknowledge."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from tidings.devices.routes import Device, devices_of
from tidings.mailbox.service import MailboxService
from tidings.protocol import api

router = APIRouter(prefix="/v1")


def mailbox_of(request: Request) -> MailboxService:
    service: MailboxService = request.app.state.mailbox
    return service


@router.post("/messages")
async def send(body: api.SendRequest, device: Device, request: Request) -> api.SendResponse:
    return await mailbox_of(request).send(device, body)


@router.post("/messages/batch")
async def send_batch(
    body: api.SendBatchRequest, device: Device, request: Request
) -> api.SendBatchResponse:
    """Several sends in one request and one transaction, each answered on its own."""
    results = await mailbox_of(request).send_batch(device, body.sends)
    return api.SendBatchResponse(
        results=[
            api.SendOutcome(sent=result)
            if isinstance(result, api.SendResponse)
            else api.SendOutcome(
                error=api.ErrorBody.model_validate(result.to_body()["error"]),
                status=result.status,
            )
            for result in results
        ]
    )


@router.post("/receipts")
async def receipts(body: api.ReceiptRequest, device: Device, request: Request) -> dict[str, int]:
    return {"filed": await mailbox_of(request).receipt(device, body)}


@router.get("/mailbox")
async def fetch(
    device: Device,
    request: Request,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> api.MailboxPage:
    if after == 0:  # a device starting a sync: worth recording that it is alive
        await devices_of(request).touch(device)
    return await mailbox_of(request).fetch(device, after, limit)


@router.post("/mailbox/ack")
async def ack(body: api.AckRequest, device: Device, request: Request) -> api.AckResponse:
    return api.AckResponse(deleted=await mailbox_of(request).ack(device, body.seqs))


@router.get("/blocks")
async def blocked(device: Device, request: Request) -> api.BlockList:
    return api.BlockList(blocked=await mailbox_of(request).blocked(device))


@router.put("/blocks/{phone}")
async def block(phone: str, device: Device, request: Request) -> api.BlockList:
    """Refuse envelopes from `phone` (a sender then gets 403 `blocked`)."""
    await mailbox_of(request).block(device, phone)
    return api.BlockList(blocked=await mailbox_of(request).blocked(device))


@router.delete("/blocks/{phone}")
async def unblock(phone: str, device: Device, request: Request) -> api.BlockList:
    await mailbox_of(request).unblock(device, phone)
    return api.BlockList(blocked=await mailbox_of(request).blocked(device))
