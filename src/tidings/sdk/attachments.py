"""Sending and receiving files: encrypt, upload, describe; download, verify, decrypt.

The descriptor returned by `upload` goes inside a message's content (for example
`{"type": "image", "image": {"caption": "...", "attachment": descriptor}}`); only the
recipients of that end-to-end encrypted message learn the key.
"""

from __future__ import annotations

from typing import Any

from tidings.crypto.attachments import (
    AttachmentError,
    decrypt_file,
    encrypt_file,
    make_descriptor,
    parse_descriptor,
)
from tidings.protocol.attachments import MAX_PLAINTEXT_BYTES
from tidings.protocol.codes import ErrorCode
from tidings.sdk import errors
from tidings.sdk.errors import SdkError
from tidings.sdk.http import ServerApi

ATTACHMENT_INVALID = "attachment_invalid"


async def upload(
    server: ServerApi, data: bytes, mime_type: str, filename: str | None = None
) -> dict[str, Any]:
    if not data:
        raise SdkError(ErrorCode.VALIDATION_FAILED, "cannot send an empty file")
    if len(data) > MAX_PLAINTEXT_BYTES:
        raise SdkError(errors.TOO_LARGE, f"a file may be at most {MAX_PLAINTEXT_BYTES} bytes")
    encrypted = encrypt_file(data)
    uploaded = await server.upload_attachment(encrypted.ciphertext)
    return make_descriptor(uploaded.id, encrypted, mime_type, filename)


async def download(server: ServerApi, descriptor: dict[str, Any]) -> bytes:
    try:
        parsed = parse_descriptor(descriptor)
    except AttachmentError as exc:
        raise SdkError(ATTACHMENT_INVALID, str(exc)) from exc
    ciphertext = await server.download_attachment(parsed.id)
    try:
        return decrypt_file(ciphertext, parsed)
    except AttachmentError as exc:
        raise SdkError(ATTACHMENT_INVALID, str(exc)) from exc
