"""Attachment use cases: store a device's ciphertext, hand it to any active device, expire it.

The core never sees a key or a plaintext: what arrives is already encrypted by the sender
(`tidings.crypto.attachments`). An id is 128 random bits, so holding one is the capability to
fetch the file, as with WhatsApp's media CDN; recipients learn it inside the E2E message.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from tidings.attachments.models import Attachment
from tidings.attachments.repository import AttachmentRepository
from tidings.db.uow import Database
from tidings.devices.service import DeviceContext
from tidings.errors import NotFound, PayloadTooLarge, ValidationFailed
from tidings.kit.clock import Clock
from tidings.protocol.attachments import (
    ATTACHMENT_ID,
    MAX_CIPHERTEXT_BYTES,
    TTL_DAYS,
    AttachmentUploaded,
)
from tidings.storage import BlobNotFound, BlobStore

log = logging.getLogger(__name__)

TTL = timedelta(days=TTL_DAYS)


def blob_key(attachment_id: str) -> str:
    return f"attachments/{attachment_id}"


class AttachmentService:
    def __init__(
        self,
        *,
        database: Database,
        clock: Clock,
        blobs: BlobStore,
        max_bytes: int = MAX_CIPHERTEXT_BYTES,
    ) -> None:
        self._database = database
        self._clock = clock
        self._blobs = blobs
        self.max_bytes = max_bytes

    async def upload(self, ctx: DeviceContext, ciphertext: bytes) -> AttachmentUploaded:
        if not ciphertext:
            raise ValidationFailed("an attachment cannot be empty")
        if len(ciphertext) > self.max_bytes:
            raise PayloadTooLarge(f"an attachment may be at most {self.max_bytes} bytes")
        attachment_id = secrets.token_hex(16)
        key = blob_key(attachment_id)
        # The blob first: a row never points at a file that was not written. If the row's
        # transaction fails, the blob is removed again.
        await self._blobs.put(key, ciphertext)
        now = self._clock.now()
        try:
            async with self._database.unit_of_work() as uow:
                AttachmentRepository(uow.session).add(
                    Attachment(
                        id=attachment_id,
                        uploader_device_pk=ctx.device_pk,
                        size=len(ciphertext),
                        blob_key=key,
                        created_at=now,
                        expires_at=now + TTL,
                    )
                )
        except BaseException:
            await self._blobs.delete(key)
            raise
        return AttachmentUploaded(id=attachment_id, size=len(ciphertext))

    async def download(self, ctx: DeviceContext, attachment_id: str) -> bytes:
        """The ciphertext, for any active device (`ctx` proves the caller is one)."""
        missing = NotFound(f"no attachment {attachment_id!r} (it may have expired)")
        if not ATTACHMENT_ID.fullmatch(attachment_id):
            raise missing
        async with self._database.read_only() as uow:
            row = await AttachmentRepository(uow.session).get(attachment_id)
            if row is None or row.expires_at <= self._clock.now():
                raise missing
            key = row.blob_key
        try:
            return await self._blobs.get(key)
        except BlobNotFound:
            raise missing from None

    async def purge_expired(self, batch: int = 500) -> int:
        """Delete attachments past their expiry: blobs first, then rows (a crash in between
        leaves rows whose reads already answer 'expired', removed on the next pass)."""
        purged = 0
        while True:
            async with self._database.read_only() as uow:
                rows = await AttachmentRepository(uow.session).expired(self._clock.now(), batch)
                found = [(row.id, row.blob_key) for row in rows]
            if not found:
                return purged
            for _attachment_id, key in found:
                await self._blobs.delete(key)
            async with self._database.unit_of_work() as uow:
                await AttachmentRepository(uow.session).delete([i for i, _ in found])
            purged += len(found)
            if len(found) < batch:
                return purged
