from __future__ import annotations

import base64

import pytest
import vodozemac

from tidings.crypto import (
    AccountKey,
    BadSignature,
    CryptoError,
    DeviceCrypto,
    b64,
    unb64,
    verify_ed25519,
)


def test_b64_is_unpadded_and_unb64_accepts_both_forms() -> None:
    data = bytes(range(32))
    text = b64(data)
    assert len(text) == 43 and not text.endswith("=")
    assert unb64(text) == data
    assert unb64(base64.b64encode(data).decode()) == data


@pytest.mark.parametrize("bad", ["@@@@", "A", "AAB=", "AA===", "ü", "A" * 42 + "B"])
def test_unb64_rejects_malformed_and_non_canonical(bad: str) -> None:
    with pytest.raises(CryptoError):
        unb64(bad)


def test_account_key_sign_verify_and_restore() -> None:
    key = AccountKey.generate()
    signature = key.sign(b"message")
    verify_ed25519(key.public_b64, b"message", signature)
    restored = AccountKey.from_private_bytes(key.private_bytes())
    assert restored.public_b64 == key.public_b64
    assert len(key.public_b64) == 43
    with pytest.raises(BadSignature):
        verify_ed25519(key.public_b64, b"other message", signature)
    with pytest.raises(BadSignature):
        verify_ed25519(AccountKey.generate().public_b64, b"message", signature)


@pytest.mark.parametrize(
    ("public", "signature"),
    [
        ("not base64!", None),
        (b64(b"\x01" * 31), None),
        (None, "not base64!"),
        (None, b64(b"\x00" * 63)),
    ],
)
def test_verify_rejects_malformed_inputs(public: str | None, signature: str | None) -> None:
    key = AccountKey.generate()
    with pytest.raises(BadSignature):
        verify_ed25519(public or key.public_b64, b"m", signature or key.sign(b"m"))


def test_private_key_length_checked() -> None:
    with pytest.raises(CryptoError):
        AccountKey.from_private_bytes(b"\x00" * 31)


def test_vodozemac_device_signatures_verify_with_cryptography() -> None:
    account = vodozemac.Account()
    signature = account.sign(b"device says hi").to_base64()
    verify_ed25519(account.ed25519_key.to_base64(), b"device says hi", signature)
    with pytest.raises(BadSignature):
        verify_ed25519(account.ed25519_key.to_base64(), b"device says bye", signature)

    device = DeviceCrypto.create()
    verify_ed25519(device.signing_key, b"x", device.sign(b"x"))


def test_account_key_signature_verifies_with_vodozemac() -> None:
    key = AccountKey.generate()
    vodozemac.Ed25519PublicKey.from_base64(key.public_b64).verify_signature(
        b"m", vodozemac.Ed25519Signature.from_base64(key.sign(b"m"))
    )
