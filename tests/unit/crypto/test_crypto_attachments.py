"""Per-file attachment encryption: round trip, and every check a receiver relies on."""

from __future__ import annotations

import pytest

from tidings.crypto.attachments import (
    AttachmentError,
    decrypt_file,
    encrypt_file,
    make_descriptor,
    parse_descriptor,
)


def test_round_trip_and_fresh_keys() -> None:
    first, second = encrypt_file(b"same file"), encrypt_file(b"same file")
    assert first.key != second.key and first.ciphertext != second.ciphertext
    assert b"same file" not in first.ciphertext
    descriptor = parse_descriptor(make_descriptor("a" * 32, first, "text/plain", "n.txt"))
    assert decrypt_file(first.ciphertext, descriptor) == b"same file"
    assert descriptor.filename == "n.txt" and descriptor.size == 9


def test_tampering_is_detected() -> None:
    encrypted = encrypt_file(b"payload")
    raw = make_descriptor("a" * 32, encrypted, "text/plain")
    flipped = encrypted.ciphertext[:-1] + bytes([encrypted.ciphertext[-1] ^ 1])
    with pytest.raises(AttachmentError):
        decrypt_file(flipped, parse_descriptor(raw))  # digest of the ciphertext
    other = encrypt_file(b"payload")
    wrong_key = parse_descriptor({**raw, "key": make_descriptor("b", other, "x")["key"]})
    with pytest.raises(AttachmentError):
        decrypt_file(encrypted.ciphertext, wrong_key)  # GCM tag
    with pytest.raises(AttachmentError):
        decrypt_file(encrypted.ciphertext, parse_descriptor({**raw, "sha256": "00" * 32}))


@pytest.mark.parametrize(
    "changes",
    [{"key": "!!"}, {"key": "AAAA"}, {"size": -1}, {"size": True}, {"id": ""}, {"sha256": 7}],
)
def test_malformed_descriptors_are_refused(changes: dict[str, object]) -> None:
    good = make_descriptor("a" * 32, encrypt_file(b"x"), "text/plain")
    with pytest.raises(AttachmentError):
        parse_descriptor({**good, **changes})


@pytest.mark.parametrize("raw", [None, [], "descriptor", {"id": "x"}])
def test_non_descriptors_are_refused(raw: object) -> None:
    with pytest.raises(AttachmentError):
        parse_descriptor(raw)
