"""Business media (Cloud API §10): upload, describe, download, delete, send and receive files.

- **At rest** every file is sealed (AES-256-GCM, AAD naming the media id) before it reaches the
  blob store; the table holds only what the API reports (type, size, digest of the plaintext).
- **Sending** re-encrypts the file with a fresh per-file key through the API device's SDK,
  uploads the ciphertext to the core's attachments and puts the descriptor (with the key)
  inside the end-to-end message: the core never sees the file.
- **Receiving** downloads and decrypts a customer's attachment through the API device, checks
  it like an upload, and stores it as media the business can fetch with its token.
- **Links** are fetched through `tidings.outbound` (no SSRF): http(s) only, no redirects,
  every resolved address checked, at most the kind's size limit read.

Media ids are Graph-style numeric ids. Uploads expire after 30 days, received media after 7,
as Meta's do; `purge_expired` removes both.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from tidings.business.media_repository import MediaRepository
from tidings.business.media_types import (
    KINDS,
    MEDIA_KINDS,
    MediaRejected,
    check_media,
    guess_from_filename,
    normalize_mime,
)
from tidings.business.models import BusinessMedia
from tidings.business.service import PhoneInfo, graph_id
from tidings.crypto.attachments import AttachmentError, parse_descriptor
from tidings.crypto.sealing import Sealer
from tidings.db.uow import Database, UnitOfWork
from tidings.errors import NotFound, ValidationFailed
from tidings.kit.clock import Clock
from tidings.outbound import OutboundPolicy, check_url_syntax, read_limited, safe_http_client
from tidings.sdk.client import DeviceClient
from tidings.sdk.errors import SdkError
from tidings.storage import BlobNotFound, BlobStore

log = logging.getLogger(__name__)

UPLOAD_TTL = timedelta(days=30)
INBOUND_TTL = timedelta(days=7)
URL_TTL = timedelta(minutes=5)
UNSUPPORTED_TYPE = 131051
MEDIA_DOWNLOAD_ERROR = 131052
MEDIA_UPLOAD_ERROR = 131053
FILENAME_MAX = 255
_NO_SUCH_OBJECT = (
    "Unsupported {verb} request. Object with ID '{id}' does not exist, cannot be loaded due to"
    " missing permissions, or does not support this operation."
)


class MediaUnavailable(ValidationFailed):
    """Media that cannot be stored or sent: answered (or reported async) with `graph_code`."""

    def __init__(self, message: str, graph_code: int = MEDIA_UPLOAD_ERROR) -> None:
        super().__init__(message, details={"graph_code": graph_code})
        self.graph_code = graph_code


@dataclass(frozen=True)
class MediaInfo:
    media_id: str
    business_id: int
    phone_number_id: str
    mime_type: str
    sha256: str
    file_size: int
    filename: str | None
    expires_at: datetime


@dataclass(frozen=True)
class ReceivedMedia:
    """A customer's file, downloaded and sealed into the blob store; `row` is not saved yet
    (it is added in the transaction that applies the message, see `record`)."""

    row: BusinessMedia | None
    error: tuple[int, str] | None = None

    @property
    def webhook_fields(self) -> dict[str, Any] | None:
        if self.row is None:
            return None
        return {"id": self.row.media_id, "mime_type": self.row.mime_type, "sha256": self.row.sha256}


def clean_filename(raw: str | None) -> str | None:
    """The last path component (clients send full paths, Windows ones too), bounded."""
    if not raw:
        return None
    name = PurePosixPath(raw.replace("\\", "/")).name.strip()
    return name[:FILENAME_MAX] or None


def _missing(media_id: str, verb: str = "get") -> NotFound:
    # The same answer for "no such id" and "another business's id": ids must not leak tenancy.
    return NotFound(_NO_SUCH_OBJECT.format(verb=verb, id=media_id))


class BusinessMediaService:
    def __init__(
        self,
        *,
        database: Database,
        clock: Clock,
        sealer: Sealer,
        blobs: BlobStore,
        policy: OutboundPolicy,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._database = database
        self._clock = clock
        self._sealer = sealer
        self._blobs = blobs
        self._policy = policy
        self._transport = transport  # the seam tests swap for link fetches
        self._url_key = sealer.derive("business-media/url")

    # -- storing ----------------------------------------------------------------------------

    def _seal(self, media_id: str, data: bytes) -> bytes:
        return self._sealer.seal(data, f"business-media/{media_id}".encode())

    def _open(self, media_id: str, blob: bytes) -> bytes:
        return self._sealer.open(blob, f"business-media/{media_id}".encode())

    async def _new_row(
        self,
        phone_pk: int,
        data: bytes,
        mime_type: str,
        filename: str | None,
        origin: str,
        ttl: timedelta,
    ) -> BusinessMedia:
        """Seal `data` into the blob store and build (not add) its row."""
        media_id = graph_id()
        key = f"business-media/{media_id}"
        await self._blobs.put(key, self._seal(media_id, data))
        now = self._clock.now()
        return BusinessMedia(
            media_id=media_id,
            phone_id=phone_pk,
            origin=origin,
            mime_type=mime_type,
            sha256=hashlib.sha256(data).hexdigest(),
            file_size=len(data),
            filename=filename,
            blob_key=key,
            created_at=now,
            expires_at=now + ttl,
        )

    async def upload(
        self,
        phone: PhoneInfo,
        data: bytes,
        *,
        declared_type: str | None,
        content_type: str | None,
        filename: str | None,
    ) -> MediaInfo:
        """Store an uploaded file. The type is the `type` field, else the file part's
        Content-Type (unless generic), else the filename's extension, else the bytes."""
        filename = clean_filename(filename)
        part_type = normalize_mime(content_type)
        if part_type == "application/octet-stream":
            part_type = None
        mime = normalize_mime(declared_type) or part_type or guess_from_filename(filename)
        try:
            _kind, mime = check_media(data, mime)
        except MediaRejected as exc:
            raise MediaUnavailable(str(exc)) from None
        row = await self._new_row(phone.phone_pk, data, mime, filename, "upload", UPLOAD_TTL)
        try:
            async with self._database.unit_of_work() as uow:
                MediaRepository(uow.session).add(row)
        except BaseException:
            await self._blobs.delete(row.blob_key)
            raise
        return _info(row, phone.business_id, phone.phone_number_id)

    # -- reading and deleting ---------------------------------------------------------------

    async def owned(self, business_id: int, media_id: str) -> MediaInfo | None:
        """The media if it exists, is unexpired and belongs to `business_id`; else None."""
        if not media_id.isdigit():
            return None
        async with self._database.read_only() as uow:
            found = await MediaRepository(uow.session).with_phone(media_id)
            if found is None:
                return None
            row, number = found
            if number.business_id != business_id or row.expires_at <= self._clock.now():
                return None
            return _info(row, number.business_id, number.phone_number_id)

    async def info(
        self,
        business_id: int,
        media_id: str,
        phone_number_id: str | None = None,
        *,
        verb: str = "get",
    ) -> MediaInfo:
        media = await self.owned(business_id, media_id)
        if media is None:
            raise _missing(media_id, verb)
        if phone_number_id is not None and phone_number_id != media.phone_number_id:
            raise ValidationFailed(
                f"Media {media_id} does not belong to phone number {phone_number_id}.",
                details={"graph_code": 100},
            )
        return media

    async def content(self, business_id: int, media_id: str) -> tuple[MediaInfo, bytes]:
        media = await self.info(business_id, media_id)
        try:
            blob = await self._blobs.get(f"business-media/{media_id}")
        except BlobNotFound:
            raise _missing(media_id) from None
        return media, self._open(media_id, blob)

    async def delete(
        self, business_id: int, media_id: str, phone_number_id: str | None = None
    ) -> None:
        media = await self.info(business_id, media_id, phone_number_id, verb="delete")
        async with self._database.unit_of_work() as uow:
            await MediaRepository(uow.session).delete([media.media_id])
        await self._blobs.delete(f"business-media/{media.media_id}")

    # -- download URLs ----------------------------------------------------------------------

    def url_signature(self, media_id: str) -> tuple[int, str]:
        """(expiry as unix seconds, signature) for a download URL valid for 5 minutes."""
        expires = int((self._clock.now() + URL_TTL).timestamp())
        return expires, self._sign(media_id, expires)

    def _sign(self, media_id: str, expires: int) -> str:
        message = f"{media_id}:{expires}".encode()
        return hmac.new(self._url_key, message, hashlib.sha256).hexdigest()

    def check_url_signature(self, media_id: str, expires: str, signature: str) -> None:
        """NotFound for a forged or expired URL (Meta answers an expired URL with 404)."""
        gone = NotFound("This media URL is invalid or has expired; request a new one.")
        if not expires.isdigit() or not media_id.isdigit():
            raise gone
        if not hmac.compare_digest(self._sign(media_id, int(expires)), signature):
            raise gone
        if int(expires) <= self._clock.now().timestamp():
            raise gone

    # -- sending ----------------------------------------------------------------------------

    async def check_sendable(self, phone: PhoneInfo, kind: str, media_id: str) -> MediaInfo:
        """An uploaded media id this number may send as `kind` (else 131053, answered at once)."""
        media = await self.owned(phone.business_id, media_id)
        if media is None or media.phone_number_id != phone.phone_number_id:
            raise MediaUnavailable(
                f"Media id {media_id} is unknown, expired, or was not uploaded by this phone"
                " number."
            )
        if media.mime_type not in KINDS[kind].mime_types:
            raise MediaUnavailable(f"Media {media_id} is {media.mime_type}, not a {kind} type.")
        return media

    async def attach(
        self, phone: PhoneInfo, client: DeviceClient, content: dict[str, Any]
    ) -> dict[str, Any]:
        """The E2E content for a media message: the file re-encrypted under a fresh key and
        uploaded by the API device, its descriptor in place of the Cloud API `id` / `link`.

        MediaUnavailable for media that is gone or a link that fails (reported as a `failed`
        status); SdkError from the upload itself (the caller decides whether to retry).
        """
        kind = content["type"]
        payload: dict[str, Any] = content[kind]
        if payload.get("id"):
            media, data = await self._sendable_content(phone, kind, str(payload["id"]))
            mime, filename = media.mime_type, payload.get("filename") or media.filename
        else:
            data, mime = await self.fetch_link(str(payload.get("link")), kind)
            filename = payload.get("filename") or _link_filename(str(payload.get("link")))
        descriptor = await client.upload_attachment(data, mime, filename)
        inner: dict[str, Any] = {
            k: payload[k] for k in ("caption", "filename", "voice") if k in payload
        }
        inner["attachment"] = descriptor
        return {**content, kind: inner}

    async def _sendable_content(
        self, phone: PhoneInfo, kind: str, media_id: str
    ) -> tuple[MediaInfo, bytes]:
        media = await self.check_sendable(phone, kind, media_id)
        try:
            blob = await self._blobs.get(f"business-media/{media_id}")
        except BlobNotFound:
            raise MediaUnavailable(f"Media id {media_id} has expired.") from None
        return media, self._open(media_id, blob)

    async def fetch_link(self, url: str, kind: str) -> tuple[bytes, str]:
        """(bytes, MIME type) of the file at `url`, within the policy and `kind`'s limits."""
        limit = KINDS[kind].max_bytes
        try:
            check_url_syntax(url, self._policy)
            async with (
                safe_http_client(self._policy, self._transport) as http,
                http.stream("GET", url) as response,
            ):
                if response.status_code != 200:
                    raise MediaUnavailable(
                        f"Fetching the media link answered HTTP {response.status_code}."
                    )
                length = response.headers.get("content-length", "")
                if length.isdigit() and int(length) > limit:
                    raise MediaUnavailable(f"The linked {kind} is over the {limit}-byte limit.")
                data = await read_limited(response, limit + 1)
                declared = response.headers.get("content-type")
        except ValidationFailed as exc:
            if isinstance(exc, MediaUnavailable):
                raise
            raise MediaUnavailable(f"The media link was refused: {exc.message}") from None
        except httpx.HTTPError as exc:
            raise MediaUnavailable(f"The media link could not be fetched: {exc}") from None
        if len(data) > limit:
            raise MediaUnavailable(f"The linked {kind} is over the {limit}-byte limit.")
        mime = normalize_mime(declared)
        if mime in (None, "application/octet-stream", "binary/octet-stream"):
            mime = guess_from_filename(_link_filename(url))
        try:
            _kind, mime = check_media(data, mime, kind)
        except MediaRejected as exc:
            raise MediaUnavailable(f"The linked file was refused: {exc}") from None
        return data, mime

    # -- receiving --------------------------------------------------------------------------

    async def receive(
        self, phone: PhoneInfo, client: DeviceClient, content: dict[str, Any]
    ) -> ReceivedMedia | None:
        """Download, decrypt and seal a customer's attachment; None if `content` is no media.

        A file that cannot be used gives a ReceivedMedia with an error (the webhook reports
        the message as unsupported); transport failures raise SdkError so the caller retries.
        """
        kind = content.get("type")
        inner = content.get(kind) if isinstance(kind, str) else None
        if kind not in MEDIA_KINDS or not isinstance(inner, dict) or "attachment" not in inner:
            return None
        try:
            descriptor = parse_descriptor(inner["attachment"])
        except AttachmentError as exc:
            return ReceivedMedia(None, (MEDIA_DOWNLOAD_ERROR, f"Malformed attachment: {exc}"))
        if descriptor.size > KINDS[kind].max_bytes:
            details = f"The {kind} is over the {KINDS[kind].max_bytes}-byte limit."
            return ReceivedMedia(None, (MEDIA_DOWNLOAD_ERROR, details))
        try:
            data = await client.download_attachment(inner["attachment"])
        except SdkError as exc:
            if exc.status is None or exc.status >= 500 or exc.code in ("network_error", "timeout"):
                raise
            return ReceivedMedia(
                None, (MEDIA_DOWNLOAD_ERROR, f"Media download error: {exc.message}")
            )
        try:
            _kind, mime = check_media(data, descriptor.mime_type, kind)
        except MediaRejected as exc:
            return ReceivedMedia(None, (UNSUPPORTED_TYPE, str(exc)))
        row = await self._new_row(
            phone.phone_pk, data, mime, clean_filename(descriptor.filename), "inbound", INBOUND_TTL
        )
        return ReceivedMedia(row)

    def record(self, uow: UnitOfWork, received: ReceivedMedia) -> None:
        """Save a received file's row in the transaction that applies its message."""
        if received.row is not None:
            MediaRepository(uow.session).add(received.row)

    async def discard(self, received: ReceivedMedia) -> None:
        """Remove the blob of a received file whose message was not applied."""
        if received.row is not None:
            await self._blobs.delete(received.row.blob_key)

    # -- expiry -----------------------------------------------------------------------------

    async def purge_expired(self, batch: int = 500) -> int:
        """Delete media past its expiry (blob first: a crash leaves a row that reads as gone)."""
        purged = 0
        while True:
            async with self._database.read_only() as uow:
                rows = await MediaRepository(uow.session).expired(self._clock.now(), batch)
                found = [(row.media_id, row.blob_key) for row in rows]
            if not found:
                return purged
            for _media_id, key in found:
                await self._blobs.delete(key)
            async with self._database.unit_of_work() as uow:
                await MediaRepository(uow.session).delete([media_id for media_id, _ in found])
            purged += len(found)
            if len(found) < batch:
                return purged


def _info(row: BusinessMedia, business_id: int, phone_number_id: str) -> MediaInfo:
    return MediaInfo(
        media_id=row.media_id,
        business_id=business_id,
        phone_number_id=phone_number_id,
        mime_type=row.mime_type,
        sha256=row.sha256,
        file_size=row.file_size,
        filename=row.filename,
        expires_at=row.expires_at,
    )


def _link_filename(url: str) -> str | None:
    try:
        return clean_filename(unquote(urlsplit(url).path))
    except ValueError:
        return None
