"""The account-level Ed25519 key that signs an account's device list."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tidings.crypto.encoding import b64, unb64
from tidings.crypto.errors import BadSignature, CryptoError

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


class AccountKey:
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key

    @classmethod
    def generate(cls) -> AccountKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, data: bytes) -> AccountKey:
        if not isinstance(data, bytes) or len(data) != 32:
            raise CryptoError("account private key must be 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(data))

    def private_bytes(self) -> bytes:
        return self._key.private_bytes_raw()

    @property
    def public_b64(self) -> str:
        return b64(self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def sign(self, message: bytes) -> str:
        return b64(self._key.sign(message))


def verify_ed25519(public_b64: str, message: bytes, signature_b64: str) -> None:
    """Verify any Ed25519 signature in our encoding, including vodozemac device signatures."""
    try:
        public = unb64(public_b64)
        signature = unb64(signature_b64)
    except CryptoError as exc:
        raise BadSignature("malformed key or signature") from exc
    if len(public) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        raise BadSignature("key or signature has the wrong length")
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError) as exc:
        raise BadSignature("signature does not verify") from exc
