"""Base64 as this layer writes it.

vodozemac emits unpadded standard base64, so everything we emit matches that. Decoding accepts
padded or unpadded input but only the canonical encoding of the bytes, so one key has exactly
one textual form and string comparisons of keys are meaningful.
"""

from __future__ import annotations

import base64

import pybase64

from tidings.crypto.errors import CryptoError


def b64(data: bytes) -> str:
    # pybase64 (SIMD): the send path encodes every envelope's ciphertext, 0.2 µs for 470
    # bytes against binascii's 0.6.
    return pybase64.b64encode_as_string(data).rstrip("=")


def unb64(text: str) -> bytes:
    if not isinstance(text, str):
        raise CryptoError("base64 value must be a string")
    stripped = text.rstrip("=")
    padded = stripped + "=" * (-len(stripped) % 4)
    try:
        data = base64.b64decode(padded, validate=True)
    except ValueError as exc:
        raise CryptoError("malformed base64") from exc
    if text not in (stripped, padded) or b64(data) != stripped:
        raise CryptoError("non-canonical base64")
    return data
