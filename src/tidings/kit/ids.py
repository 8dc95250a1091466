"""Identifiers and secrets.

Secrets handed to clients (device tokens, codes) are random and stored only as hashes. Tokens
carry 256 bits of entropy, so a plain SHA-256 is a sound at-rest hash; short human codes are
hashed with a server-side pepper (HMAC) so a stolen table cannot be brute-forced offline.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid


def new_uuid() -> str:
    return uuid.uuid4().hex


def random_token(prefix: str, nbytes: int = 32) -> str:
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def numeric_code(digits: int = 6) -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(digits))


def hash_code(pepper: bytes, scope: str, code: str) -> str:
    """Hash a short code bound to its scope (for example a phone number)."""
    return hmac.new(pepper, f"{scope}\x00{code}".encode(), hashlib.sha256).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(data: str) -> bytes:
    """Standard base64, with or without padding (vodozemac emits it unpadded)."""
    text = data.strip()
    return base64.b64decode((text + "=" * (-len(text) % 4)).encode("ascii"), validate=True)
