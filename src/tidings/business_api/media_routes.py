"""Cloud API media routes (reference/cloud-api.md §10 and the Appendix).

    POST   /{version}/{phone_number_id}/media      multipart upload → {"id": MEDIA_ID}
    GET    /{version}/{media_id}                   → url, mime_type, sha256, file_size, id
           (served by the node dispatcher in routes.py, through `media_node`)
    DELETE /{version}/{media_id}                   → {"success": true}
    GET    /whatsapp_business/attachments/?mid=…   the download URL: the bytes, same token

Every path also works without the version prefix. The download URL is on our own host, signed
and valid for 5 minutes, and still demands the business's bearer token, as Meta's does.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from tidings.business.media import BusinessMediaService, MediaInfo
from tidings.business.media_types import MAX_MEDIA_BYTES
from tidings.business.service import MESSAGING, PhoneInfo
from tidings.business_api import wire
from tidings.business_api.auth import business_caller, messaging_phone
from tidings.business_api.graph_errors import GraphCode, GraphError
from tidings.business_api.paths import check_path
from tidings.errors import NotFound

router = APIRouter()

DOWNLOAD_PATH = "/whatsapp_business/attachments/"
# The largest file plus room for the multipart framing and the other form fields.
MAX_UPLOAD_BODY = MAX_MEDIA_BYTES + 1024 * 1024
_UPLOAD_PATH = re.compile(r"/(?:v\d+\.\d+/)?\d{1,32}/media")


def is_media_upload(path: str) -> bool:
    return _UPLOAD_PATH.fullmatch(path) is not None


def media_of(request: Request) -> BusinessMediaService:
    service: BusinessMediaService = request.app.state.business_media
    return service


def _public_base(request: Request) -> str:
    configured = request.app.state.settings.server.public_url
    return str(configured or request.base_url).rstrip("/")


def _text_field(form: Any, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) and value else None


async def upload_media(request: Request, phone_number_id: str, version: str | None = None) -> Any:
    check_path(version, phone_number_id)
    phone = await messaging_phone(request, phone_number_id)
    try:
        form = await request.form(max_files=1, max_fields=20)
    except (MultiPartException, HTTPException) as exc:
        raise GraphError(GraphCode.INVALID_PARAMETER, f"Malformed multipart body: {exc}") from None
    try:
        # Clients put messaging_product in the form or in the query string (Appendix).
        product = _text_field(form, "messaging_product") or request.query_params.get(
            "messaging_product"
        )
        if not product:
            raise GraphError(
                GraphCode.REQUIRED_PARAMETER_MISSING, "The parameter messaging_product is required."
            )
        if product != "whatsapp":
            raise GraphError(
                GraphCode.INVALID_PARAMETER, "Param messaging_product must be 'whatsapp'."
            )
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise GraphError(
                GraphCode.REQUIRED_PARAMETER_MISSING, "The parameter file is required."
            )
        # A chunked body has no Content-Length for the middleware to check: check here too.
        data = await upload.read(MAX_MEDIA_BYTES + 1)
        if len(data) > MAX_MEDIA_BYTES:
            raise GraphError(
                GraphCode.MEDIA_UPLOAD_ERROR,
                f"The file is over the {MAX_MEDIA_BYTES}-byte limit.",
                http_status=413,
            )
        media = await media_of(request).upload(
            phone,
            data,
            declared_type=_text_field(form, "type"),
            content_type=upload.content_type,
            filename=upload.filename,
        )
    finally:
        await form.close()
    return {"id": media.media_id}


router.add_api_route("/{version}/{phone_number_id}/media", upload_media, methods=["POST"])
router.add_api_route("/{phone_number_id}/media", upload_media, methods=["POST"])


async def media_node(request: Request, node_id: str) -> dict[str, Any] | None:
    """The caller's media `node_id` as Graph describes it, or None if it is not the caller's
    media (then the id is looked up as another node type)."""
    caller = await business_caller(request)
    service = media_of(request)
    media = await service.owned(caller.business_id, node_id)
    if media is None:
        return None
    caller.require(MESSAGING)
    media = await service.info(
        caller.business_id, node_id, request.query_params.get("phone_number_id")
    )
    return _describe(request, media)


def _describe(request: Request, media: MediaInfo) -> dict[str, Any]:
    expires, signature = media_of(request).url_signature(media.media_id)
    query = urlencode({"mid": media.media_id, "ext": expires, "hash": signature})
    return {
        "messaging_product": "whatsapp",
        "url": f"{_public_base(request)}{DOWNLOAD_PATH}?{query}",
        "mime_type": media.mime_type,
        "sha256": media.sha256,
        "file_size": media.file_size,
        "id": media.media_id,
    }


async def delete_media(request: Request, media_id: str, version: str | None = None) -> Any:
    check_path(version, media_id)
    caller = await business_caller(request)
    caller.require(MESSAGING)
    await media_of(request).delete(
        caller.business_id, media_id, request.query_params.get("phone_number_id")
    )
    return wire.SUCCESS


router.add_api_route("/{version}/{media_id}", delete_media, methods=["DELETE"])
router.add_api_route("/{media_id}", delete_media, methods=["DELETE"])


@router.get(DOWNLOAD_PATH)
async def download_media(request: Request) -> Response:
    """The bytes behind a media URL: the signature must hold, the URL must be under 5 minutes
    old, and the bearer token must belong to the media's business."""
    caller = await business_caller(request)
    caller.require(MESSAGING)
    service = media_of(request)
    query = request.query_params
    media_id = query.get("mid", "")
    try:
        service.check_url_signature(media_id, query.get("ext", ""), query.get("hash", ""))
        media, data = await service.content(caller.business_id, media_id)
    except NotFound as exc:
        # Meta answers an expired media URL with 404: "get a new one".
        raise GraphError(GraphCode.INVALID_PARAMETER, exc.message, http_status=404) from None
    headers = {}
    if media.filename:
        headers["Content-Disposition"] = (
            f"attachment; filename*=UTF-8''{quote(media.filename, safe='')}"
        )
    return Response(content=data, media_type=media.mime_type, headers=headers)


async def check_sendable_media(
    request: Request, phone: PhoneInfo, kind: str, payload: dict[str, Any]
) -> None:
    """A media send by `id` must name this number's unexpired media of a fitting type; that is
    answered at once (131053). A `link` is fetched when the message is delivered, and a failure
    is reported in a `failed` status webhook, as Meta does."""
    if payload.get("id"):
        await media_of(request).check_sendable(phone, kind, str(payload["id"]))
