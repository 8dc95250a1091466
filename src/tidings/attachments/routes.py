"""HTTP routes of attachments: upload ciphertext, fetch it by id."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from tidings.attachments.service import AttachmentService
from tidings.devices.routes import Device
from tidings.errors import PayloadTooLarge
from tidings.protocol.attachments import AttachmentUploaded

router = APIRouter(prefix="/v1")


def attachments_of(request: Request) -> AttachmentService:
    service: AttachmentService = request.app.state.attachments
    return service


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused as soon as it passes `limit` (chunked bodies carry no length)."""
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise PayloadTooLarge(f"an attachment may be at most {limit} bytes")
    return bytes(body)


@router.post("/attachments", status_code=201)
async def upload(device: Device, request: Request) -> AttachmentUploaded:
    service = attachments_of(request)
    return await service.upload(device, await read_body(request, service.max_bytes))


@router.get("/attachments/{attachment_id}")
async def download(attachment_id: str, device: Device, request: Request) -> Response:
    data = await attachments_of(request).download(device, attachment_id)
    return Response(content=data, media_type="application/octet-stream")
