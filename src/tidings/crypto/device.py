"""One vodozemac `Account` per device, and its signed one-time and fallback keys.

Key publication must survive a crash at any step without ever publishing two different keys
under one id (element-ios#3818). The safe order is: generate, persist the pickle, upload,
`mark_published`, persist again. Until `mark_published`, the same keys (and, Ed25519 being
deterministic, the same signatures) come back from `unpublished_one_time_keys`, so a retried
upload is identical.
"""

from __future__ import annotations

from typing import Protocol, cast

import vodozemac

from tidings.crypto.account_key import verify_ed25519
from tidings.crypto.encoding import unb64
from tidings.crypto.errors import CryptoError
from tidings.protocol.api import ClaimedKey, OneTimeKey

# Fallback keys share the domain with one-time keys so a verifier needs no out-of-band flag;
# their ids carry a prefix instead, because vodozemac numbers both kinds from the same start.
ONE_TIME_KEY_DOMAIN = b"\x06\x03tidings-otk"
FALLBACK_ID_PREFIX = "fb-"
PICKLE_KEY_BYTES = 32


class _FallbackApi(Protocol):
    """Fallback-key members the vodozemac 0.10 binding has but its type stub omits."""

    @property
    def fallback_key(self) -> dict[str, vodozemac.Curve25519PublicKey]: ...

    def generate_fallback_key(self) -> object: ...


def _otk_message(key_id: str, key: str) -> bytes:
    return ONE_TIME_KEY_DOMAIN + key_id.encode() + b"\x00" + key.encode()


def _check_pickle_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != PICKLE_KEY_BYTES:
        raise CryptoError("pickle key must be 32 bytes")


def curve_key(text: str) -> vodozemac.Curve25519PublicKey:
    """Parse a Curve25519 public key in our encoding (padded input is tolerated)."""
    try:
        return vodozemac.Curve25519PublicKey.from_bytes(unb64(text))
    except (vodozemac.KeyException, ValueError) as exc:
        raise CryptoError("malformed Curve25519 key") from exc


class DeviceCrypto:
    def __init__(self, account: vodozemac.Account) -> None:
        self._account = account

    @classmethod
    def create(cls) -> DeviceCrypto:
        return cls(vodozemac.Account())

    @classmethod
    def from_pickle(cls, pickle: str, key: bytes) -> DeviceCrypto:
        _check_pickle_key(key)
        try:
            return cls(vodozemac.Account.from_pickle(pickle, key))
        except ValueError as exc:
            raise CryptoError("cannot unpickle the device account") from exc

    def pickle(self, key: bytes) -> str:
        _check_pickle_key(key)
        return self._account.pickle(key)

    @property
    def identity_key(self) -> str:
        return self._account.curve25519_key.to_base64()

    @property
    def signing_key(self) -> str:
        return self._account.ed25519_key.to_base64()

    @property
    def max_one_time_keys(self) -> int:
        return self._account.max_number_of_one_time_keys

    def sign(self, message: bytes) -> str:
        return self._account.sign(message).to_base64()

    def _signed(self, key_id: str, key: vodozemac.Curve25519PublicKey) -> OneTimeKey:
        text = key.to_base64()
        return OneTimeKey(key_id=key_id, key=text, signature=self.sign(_otk_message(key_id, text)))

    def generate_one_time_keys(self, n: int) -> list[OneTimeKey]:
        """Add `n` keys and return every unpublished key.

        vodozemac keeps at most `max_one_time_keys` private keys and silently drops the oldest
        beyond that, so callers should only top up what the server reports missing.
        """
        if n < 0:
            raise CryptoError("cannot generate a negative number of keys")
        if n:
            self._account.generate_one_time_keys(n)
        return self.unpublished_one_time_keys()

    def unpublished_one_time_keys(self) -> list[OneTimeKey]:
        keys = self._account.one_time_keys
        return [self._signed(key_id, keys[key_id]) for key_id in sorted(keys)]

    def generate_fallback_key(self) -> OneTimeKey:
        """Rotate the fallback key; vodozemac still accepts the previous one until the next."""
        cast(_FallbackApi, self._account).generate_fallback_key()
        key = self.current_fallback_key()
        if key is None:  # pragma: no cover - the binding always yields the key it just made
            raise CryptoError("vodozemac did not produce a fallback key")
        return key

    def current_fallback_key(self) -> OneTimeKey | None:
        """The fallback key awaiting upload; None once it has been marked as published."""
        keys = cast(_FallbackApi, self._account).fallback_key
        for key_id in sorted(keys):
            return self._signed(FALLBACK_ID_PREFIX + key_id, keys[key_id])
        return None

    def mark_published(self) -> None:
        self._account.mark_keys_as_published()

    def create_outbound_session(self, identity_key: str, one_time_key: str) -> vodozemac.Session:
        try:
            return self._account.create_outbound_session(
                curve_key(identity_key), curve_key(one_time_key)
            )
        except ValueError as exc:
            raise CryptoError(f"cannot start a session: {exc}") from exc

    def create_inbound_session(
        self, identity_key: str, message: vodozemac.PreKeyMessage
    ) -> tuple[vodozemac.Session, bytes]:
        """Consumes the one-time key the message used: persist the account afterwards."""
        return self._account.create_inbound_session(curve_key(identity_key), message)


def verify_one_time_key(signing_key: str, otk: OneTimeKey | ClaimedKey) -> None:
    """Check that the device owning `signing_key` really published this key (BadSignature)."""
    verify_ed25519(signing_key, _otk_message(otk.key_id, otk.key), otk.signature)
