"""AES-256-GCM sealing of records at rest.

vodozemac pickles are authenticated but deterministic (the IV comes from the pickle key), so the
storage layer seals every record again with a random nonce and associated data naming the
record: a row copied to another record's place then fails to open.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tidings.crypto.errors import CryptoError, SealError

KEY_BYTES = 32
NONCE_BYTES = 12
_VERSION = b"\x01"
_TAG_BYTES = 16


def new_master_key() -> bytes:
    return os.urandom(KEY_BYTES)


def _hkdf(master_key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(
        master_key
    )


class Sealer:
    """Seals and opens blobs under keys derived from one master key.

    The master key itself never touches AES: every use goes through HKDF with its own label,
    so the sealing key, pickle keys and any caller-derived keys are independent.
    """

    def __init__(self, master_key: bytes) -> None:
        if not isinstance(master_key, bytes) or len(master_key) != KEY_BYTES:
            raise CryptoError("master key must be 32 bytes")
        self._master = master_key
        self._aead = AESGCM(_hkdf(master_key, b"tidings/seal/v1"))

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        # The version byte is authenticated too, so a downgrade of the format is detected.
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, _VERSION + aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        if len(blob) < 1 + NONCE_BYTES + _TAG_BYTES or blob[:1] != _VERSION:
            raise SealError("not a sealed blob of a known version")
        nonce = blob[1 : 1 + NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, blob[1 + NONCE_BYTES :], _VERSION + aad)
        except InvalidTag as exc:
            raise SealError("sealed blob failed authentication") from exc

    def derive(self, label: str) -> bytes:
        return _hkdf(self._master, b"tidings/derive/" + label.encode())

    def pickle_key(self, record: str) -> bytes:
        """A key per record, so equal pickle prefixes never reveal anything across records."""
        return _hkdf(self._master, b"tidings/pickle/" + record.encode())

    def hash_key(self, purpose: str) -> bytes:
        """A key for keyed hashes (of ids kept as index entries), one per purpose."""
        return _hkdf(self._master, b"tidings/hash/" + purpose.encode())
