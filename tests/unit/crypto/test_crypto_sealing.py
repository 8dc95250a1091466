from __future__ import annotations

import pytest

from tidings.crypto import CryptoError, Sealer, SealError, new_master_key


def test_round_trip_and_fresh_nonce() -> None:
    sealer = Sealer(new_master_key())
    first = sealer.seal(b"secret record", b"device:1/peer:2")
    second = sealer.seal(b"secret record", b"device:1/peer:2")
    assert first != second
    assert first[0] == 1
    assert b"secret record" not in first
    assert sealer.open(first, b"device:1/peer:2") == b"secret record"
    assert sealer.open(second, b"device:1/peer:2") == b"secret record"


@pytest.mark.parametrize("position", [0, 1, 12, 13, -1])
def test_tampered_blob_is_rejected(position: int) -> None:
    sealer = Sealer(new_master_key())
    blob = bytearray(sealer.seal(b"payload", b"aad"))
    blob[position] ^= 0x01
    with pytest.raises(SealError):
        sealer.open(bytes(blob), b"aad")


def test_truncated_blob_is_rejected() -> None:
    sealer = Sealer(new_master_key())
    with pytest.raises(SealError):
        sealer.open(sealer.seal(b"payload", b"aad")[:20], b"aad")


def test_wrong_aad_is_rejected() -> None:
    sealer = Sealer(new_master_key())
    blob = sealer.seal(b"payload", b"row:1")
    with pytest.raises(SealError):
        sealer.open(blob, b"row:2")


def test_wrong_key_is_rejected() -> None:
    blob = Sealer(new_master_key()).seal(b"payload", b"aad")
    with pytest.raises(SealError):
        Sealer(new_master_key()).open(blob, b"aad")


def test_master_key_must_be_32_bytes() -> None:
    with pytest.raises(CryptoError):
        Sealer(b"short")


def test_derived_keys_are_deterministic_and_separated() -> None:
    master = new_master_key()
    sealer = Sealer(master)
    again = Sealer(master)
    assert len(sealer.derive("history")) == 32
    assert sealer.derive("history") == again.derive("history")
    assert sealer.derive("history") != sealer.derive("backup")
    assert sealer.pickle_key("session:a") == again.pickle_key("session:a")
    assert sealer.pickle_key("session:a") != sealer.pickle_key("session:b")
    # The two namespaces must not collide even for the same label.
    assert sealer.pickle_key("x") != sealer.derive("x")
    assert Sealer(new_master_key()).pickle_key("session:a") != sealer.pickle_key("session:a")
    assert master not in (sealer.derive("x"), sealer.pickle_key("x"))
