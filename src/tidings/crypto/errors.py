"""Exceptions raised by the end-to-end crypto layer.

Every failure is a `CryptoError`, so callers that only need to reject bad input can catch one
type; the subclasses exist where the caller must react differently (alert the user, reset a
session, drop a duplicate silently).
"""

from __future__ import annotations


class CryptoError(Exception):
    """Base class: malformed input or a failed cryptographic check."""


class SealError(CryptoError):
    """A sealed blob was tampered with, or opened with the wrong key or associated data."""


class BadSignature(CryptoError):
    """A signature or MAC did not verify (including malformed keys and signatures)."""


class DeviceListRollback(CryptoError):
    """A signed device list is older than one already seen, or forks it at the same version."""


class AccountKeyChanged(CryptoError):
    """The server presented an account key that differs from the pinned one."""


class DeviceListMismatch(CryptoError):
    """The server served devices or keys that the signed device list does not vouch for."""


class DecryptionFailed(CryptoError):
    """An Olm message could not be decrypted.

    `wedged` tells the caller that no session we hold can read this peer's messages any more,
    so a session reset is warranted (rate-limited, see `SessionManager.may_reset`).
    """

    def __init__(self, message: str, *, wedged: bool = False) -> None:
        super().__init__(message)
        self.wedged = wedged


class DuplicateMessage(CryptoError):
    """A message that was already decrypted arrived again (replay or redelivery)."""
