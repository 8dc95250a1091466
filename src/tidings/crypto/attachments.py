"""Per-file encryption of attachments (pure: bytes in, bytes out).

Each file gets its own random AES-256-GCM key. The ciphertext goes to the server; the key and
two SHA-256 digests go inside the end-to-end encrypted message as the *descriptor*:

    {"id": <attachment id>, "key": <base64 key>, "enc_sha256": <hex digest of the ciphertext>,
     "sha256": <hex digest of the plaintext>, "size": <plaintext bytes>, "mime_type": ...,
     "filename"?: ...}

GCM already authenticates the ciphertext under the key; the ciphertext digest lets a receiver
reject a swapped blob before decrypting, and the plaintext digest is what the Cloud API reports
as a media `sha256`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tidings.crypto.encoding import b64, unb64
from tidings.crypto.errors import CryptoError

KEY_BYTES = 32
NONCE_BYTES = 12
# Binds the ciphertext to its purpose, so a key reused elsewhere by mistake cannot open it.
_AAD = b"tidings/attachment/v1"


class AttachmentError(CryptoError):
    """An attachment failed a digest or authentication check, or its descriptor is malformed."""


@dataclass(frozen=True)
class EncryptedFile:
    ciphertext: bytes
    key: bytes
    enc_sha256: str
    sha256: str
    size: int


def encrypt_file(plaintext: bytes) -> EncryptedFile:
    key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = nonce + AESGCM(key).encrypt(nonce, plaintext, _AAD)
    return EncryptedFile(
        ciphertext=ciphertext,
        key=key,
        enc_sha256=hashlib.sha256(ciphertext).hexdigest(),
        sha256=hashlib.sha256(plaintext).hexdigest(),
        size=len(plaintext),
    )


def make_descriptor(
    attachment_id: str,
    encrypted: EncryptedFile,
    mime_type: str,
    filename: str | None = None,
) -> dict[str, Any]:
    descriptor: dict[str, Any] = {
        "id": attachment_id,
        "key": b64(encrypted.key),
        "enc_sha256": encrypted.enc_sha256,
        "sha256": encrypted.sha256,
        "size": encrypted.size,
        "mime_type": mime_type,
    }
    if filename:
        descriptor["filename"] = filename
    return descriptor


@dataclass(frozen=True)
class Descriptor:
    """A descriptor received from a peer, with every field type-checked."""

    id: str
    key: bytes
    enc_sha256: str
    sha256: str
    size: int
    mime_type: str
    filename: str | None


def parse_descriptor(raw: Any) -> Descriptor:
    """Check a descriptor from an untrusted message; AttachmentError if it is malformed."""
    if not isinstance(raw, dict):
        raise AttachmentError("an attachment descriptor must be an object")
    text_fields = ("id", "key", "enc_sha256", "sha256", "mime_type")
    if not all(isinstance(raw.get(name), str) and raw[name] for name in text_fields):
        raise AttachmentError("an attachment descriptor lacks id, key, digests or mime_type")
    size = raw.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise AttachmentError("an attachment descriptor needs a non-negative integer size")
    filename = raw.get("filename")
    try:
        key = unb64(raw["key"])
    except CryptoError as exc:
        raise AttachmentError("the attachment key is not base64") from exc
    if len(key) != KEY_BYTES:
        raise AttachmentError("the attachment key must be 32 bytes")
    return Descriptor(
        id=raw["id"],
        key=key,
        enc_sha256=raw["enc_sha256"].lower(),
        sha256=raw["sha256"].lower(),
        size=size,
        mime_type=raw["mime_type"][:255],
        filename=filename[:255] if isinstance(filename, str) and filename else None,
    )


def decrypt_file(ciphertext: bytes, descriptor: Descriptor) -> bytes:
    """The plaintext, after checking the ciphertext digest, the GCM tag, size and digest."""
    if not hmac.compare_digest(hashlib.sha256(ciphertext).hexdigest(), descriptor.enc_sha256):
        raise AttachmentError("the downloaded attachment does not match its digest")
    if len(ciphertext) < NONCE_BYTES + 16:
        raise AttachmentError("the attachment is too short to be a ciphertext")
    nonce = ciphertext[:NONCE_BYTES]
    try:
        plaintext = AESGCM(descriptor.key).decrypt(nonce, ciphertext[NONCE_BYTES:], _AAD)
    except InvalidTag as exc:
        raise AttachmentError("the attachment failed authentication") from exc
    if len(plaintext) != descriptor.size or not hmac.compare_digest(
        hashlib.sha256(plaintext).hexdigest(), descriptor.sha256
    ):
        raise AttachmentError("the decrypted attachment does not match its size or digest")
    return plaintext
