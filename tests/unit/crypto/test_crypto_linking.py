from __future__ import annotations

import pytest

from tidings.crypto import (
    AccountKey,
    BadSignature,
    CryptoError,
    DeviceCrypto,
    DeviceEntry,
    DeviceList,
    approve_proof,
    decode_link_code,
    encode_link_code,
    join_proof,
    link_qr_text,
    new_link_secret,
    parse_link_qr_text,
    sign_device_list,
    verify_approve_proof,
    verify_join_proof,
)
from tidings.protocol.api import DeviceKeys, SignedDeviceList


def test_link_code_round_trip() -> None:
    secret = new_link_secret()
    assert len(secret) == 32
    code = encode_link_code("lnk_AbC-123", secret)
    assert code.startswith("lnk_AbC-123.")
    assert decode_link_code(code) == ("lnk_AbC-123", secret)
    link_id, typed = code.split(".")
    sloppy = f" {link_id}.{'-'.join(typed[i : i + 4] for i in range(0, len(typed), 4)).lower()} "
    assert decode_link_code(sloppy) == ("lnk_AbC-123", secret)


@pytest.mark.parametrize(
    "code",
    [
        "",
        "no-dot-here",
        ".ABCDEFGH",
        "bad id!.AAAA",
        "x" * 33 + ".AAAA",
        "abc.AAAAAAAA",  # decodes, but far too short
        "abc.1111",  # 1 is not in the base32 alphabet
    ],
)
def test_bad_link_codes(code: str) -> None:
    with pytest.raises(CryptoError):
        decode_link_code(code)


def test_encode_validates_inputs() -> None:
    with pytest.raises(CryptoError):
        encode_link_code("has.dot", new_link_secret())
    with pytest.raises(CryptoError):
        encode_link_code("ok", b"\x00" * 16)


def _device(name: str = "Laptop") -> DeviceKeys:
    device = DeviceCrypto.create()
    return DeviceKeys(name=name, identity_key=device.identity_key, signing_key=device.signing_key)


def test_join_proof_binds_every_field() -> None:
    secret = new_link_secret()
    device = _device()
    proof = join_proof(secret, "link1", device)
    verify_join_proof(secret, "link1", device, proof)
    other = _device()
    changed = [
        (secret, "link2", device),
        (new_link_secret(), "link1", device),
        (secret, "link1", device.model_copy(update={"identity_key": other.identity_key})),
        (secret, "link1", device.model_copy(update={"signing_key": other.signing_key})),
        (secret, "link1", device.model_copy(update={"name": "Evil"})),
    ]
    for args in changed:
        with pytest.raises(BadSignature):
            verify_join_proof(*args, proof)
    with pytest.raises(BadSignature):
        verify_join_proof(secret, "link1", device, "not base64!")
    with pytest.raises(BadSignature):
        verify_join_proof(secret, "link1", device, _tampered(proof))


def _signed_list(version: int = 1) -> tuple[AccountKey, SignedDeviceList]:
    key = AccountKey.generate()
    device = DeviceCrypto.create()
    entry = DeviceEntry(1, device.identity_key, device.signing_key)
    return key, sign_device_list(DeviceList("+15550001111", version, 1, (entry,)), key)


def test_approve_proof_binds_every_field() -> None:
    secret = new_link_secret()
    key, signed = _signed_list()
    proof = approve_proof(secret, "link1", key.public_b64, signed)
    verify_approve_proof(secret, "link1", key.public_b64, signed, proof)
    other_key, other_list = _signed_list(version=2)
    changed = [
        (secret, "link2", key.public_b64, signed),
        (new_link_secret(), "link1", key.public_b64, signed),
        (secret, "link1", other_key.public_b64, signed),
        (
            secret,
            "link1",
            key.public_b64,
            signed.model_copy(update={"payload": other_list.payload}),
        ),
        (
            secret,
            "link1",
            key.public_b64,
            signed.model_copy(update={"signature": other_list.signature}),
        ),
    ]
    for args in changed:
        with pytest.raises(BadSignature):
            verify_approve_proof(*args, proof)
    # A join proof must never pass as an approval proof.
    assert proof != join_proof(secret, "link1", _device())


def test_qr_text_round_trip() -> None:
    code = encode_link_code("abc_1", new_link_secret())
    server = "https://chat.example.com:8443/base?x=1&y=2"
    text = link_qr_text(server, code)
    assert text.startswith("tidings://link?")
    assert parse_link_qr_text(text) == (server, code)


_VALID = encode_link_code("abc", bytes(32))


@pytest.mark.parametrize(
    "text",
    [
        f"https://link?server=x&code={_VALID}",
        f"tidings://other?server=x&code={_VALID}",
        f"tidings://link/path?server=x&code={_VALID}",
        "tidings://link?server=x",
        f"tidings://link?code={_VALID}",
        f"tidings://link?server=x&server=y&code={_VALID}",
        "tidings://link?server=https%3A%2F%2Fa&code=broken",
        f"tidings://link?server=a&code={_VALID}&extra=1",
    ],
)
def test_bad_qr_text(text: str) -> None:
    assert parse_link_qr_text(f"tidings://link?server=x&code={_VALID}") == ("x", _VALID)
    with pytest.raises(CryptoError):
        parse_link_qr_text(text)


def _tampered(text: str) -> str:
    """Change the first character to a different base64 digit (always a different value)."""
    return ("B" if text[0] == "A" else "A") + text[1:]
