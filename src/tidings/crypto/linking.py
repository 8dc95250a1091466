"""Linking a companion device by a code the primary shows and the companion types in.

The code carries a 32-byte link secret the server never sees. Both sides MAC what they tell
each other through the server with it: the companion proves which device keys joined, and the
primary proves which account key and signed device list it approved, so neither has to take
the server's word for the other's keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from urllib.parse import parse_qs, quote, urlsplit

from tidings.crypto.encoding import b64, unb64
from tidings.crypto.errors import BadSignature, CryptoError
from tidings.kit.jsonutil import canonical_bytes
from tidings.protocol.api import DeviceKeys, SignedDeviceList

LINK_SECRET_BYTES = 32
JOIN_DOMAIN = b"\x06\x04tidings-link-join"
APPROVE_DOMAIN = b"\x06\x05tidings-link-approve"
_LINK_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_QR_SCHEME = "tidings"
_QR_HOST = "link"


def new_link_secret() -> bytes:
    return os.urandom(LINK_SECRET_BYTES)


def _check_link_id(link_id: str) -> None:
    if not isinstance(link_id, str) or not _LINK_ID.fullmatch(link_id):
        raise CryptoError("link id must be 1-32 characters of [A-Za-z0-9_-]")


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes) or len(secret) != LINK_SECRET_BYTES:
        raise CryptoError("link secret must be 32 bytes")


def encode_link_code(link_id: str, secret: bytes) -> str:
    _check_link_id(link_id)
    _check_secret(secret)
    return f"{link_id}.{base64.b32encode(secret).decode('ascii').rstrip('=')}"


def decode_link_code(code: str) -> tuple[str, bytes]:
    """Inverse of `encode_link_code`, forgiving case, spaces and dashes typed into the secret."""
    if not isinstance(code, str) or "." not in code:
        raise CryptoError("malformed link code")
    link_id, _, secret_text = code.strip().partition(".")
    _check_link_id(link_id)
    cleaned = re.sub(r"[\s-]", "", secret_text).upper()
    try:
        secret = base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    except (binascii.Error, ValueError) as exc:
        raise CryptoError("malformed link code secret") from exc
    if len(secret) != LINK_SECRET_BYTES:
        raise CryptoError("link code secret has the wrong length")
    return link_id, secret


def _mac(secret: bytes, domain: bytes, fields: dict[str, str]) -> str:
    _check_secret(secret)
    return b64(hmac.new(secret, domain + canonical_bytes(fields), hashlib.sha256).digest())


def _verify_mac(expected: str, proof: str) -> None:
    try:
        given = unb64(proof)
    except CryptoError as exc:
        raise BadSignature("malformed link proof") from exc
    if not hmac.compare_digest(unb64(expected), given):
        raise BadSignature("link proof does not verify")


def join_proof(secret: bytes, link_id: str, device: DeviceKeys) -> str:
    """The companion's MAC over the device keys it joined with.

    One-time and fallback keys are not covered: they carry the device's own signature.
    """
    return _mac(
        secret,
        JOIN_DOMAIN,
        {
            "link_id": link_id,
            "identity_key": device.identity_key,
            "signing_key": device.signing_key,
            "name": device.name,
        },
    )


def verify_join_proof(secret: bytes, link_id: str, device: DeviceKeys, proof: str) -> None:
    _verify_mac(join_proof(secret, link_id, device), proof)


def approve_proof(
    secret: bytes, link_id: str, account_key: str, signed_list: SignedDeviceList
) -> str:
    """The primary's MAC binding the account key and the device list it signed."""
    return _mac(
        secret,
        APPROVE_DOMAIN,
        {
            "link_id": link_id,
            "account_key": account_key,
            "payload": signed_list.payload,
            "signature": signed_list.signature,
        },
    )


def verify_approve_proof(
    secret: bytes, link_id: str, account_key: str, signed_list: SignedDeviceList, proof: str
) -> None:
    _verify_mac(approve_proof(secret, link_id, account_key, signed_list), proof)


def link_qr_text(server_url: str, code: str) -> str:
    return f"{_QR_SCHEME}://{_QR_HOST}?server={quote(server_url, safe='')}&code={quote(code)}"


def parse_link_qr_text(text: str) -> tuple[str, str]:
    """Returns (server_url, code); the code is validated as a link code."""
    try:
        parts = urlsplit(text.strip())
        query = parse_qs(parts.query, strict_parsing=True)
    except (ValueError, AttributeError) as exc:
        raise CryptoError("malformed link QR text") from exc
    if parts.scheme != _QR_SCHEME or parts.netloc != _QR_HOST or parts.path not in ("", "/"):
        raise CryptoError("not a tidings link QR text")
    servers, codes = query.get("server", []), query.get("code", [])
    if len(servers) != 1 or len(codes) != 1 or set(query) != {"server", "code"}:
        raise CryptoError("link QR text needs exactly one server and one code")
    decode_link_code(codes[0])
    return servers[0], codes[0]
