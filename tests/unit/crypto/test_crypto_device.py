from __future__ import annotations

import os

import pytest

from tidings.crypto import BadSignature, CryptoError, DeviceCrypto, verify_one_time_key
from tidings.protocol.api import ClaimedKey


def test_one_time_keys_are_signed_by_the_device() -> None:
    device = DeviceCrypto.create()
    keys = device.generate_one_time_keys(5)
    assert len(keys) == 5
    assert len({k.key_id for k in keys}) == 5
    for otk in keys:
        verify_one_time_key(device.signing_key, otk)
    claimed = ClaimedKey(
        key_id=keys[0].key_id, key=keys[0].key, signature=keys[0].signature, fallback=False
    )
    verify_one_time_key(device.signing_key, claimed)


def test_tampered_or_foreign_keys_fail() -> None:
    device = DeviceCrypto.create()
    first, second = device.generate_one_time_keys(2)
    with pytest.raises(BadSignature):
        verify_one_time_key(device.signing_key, first.model_copy(update={"key": second.key}))
    with pytest.raises(BadSignature):
        verify_one_time_key(device.signing_key, first.model_copy(update={"key_id": second.key_id}))
    with pytest.raises(BadSignature):
        verify_one_time_key(DeviceCrypto.create().signing_key, first)


def test_generate_returns_all_unpublished_and_is_stable_until_published() -> None:
    device = DeviceCrypto.create()
    key = os.urandom(32)
    first = device.generate_one_time_keys(3)
    # A crash after persisting but before marking published must replay the exact same upload.
    restored = DeviceCrypto.from_pickle(device.pickle(key), key)
    assert restored.unpublished_one_time_keys() == first
    assert restored.generate_one_time_keys(0) == first
    more = restored.generate_one_time_keys(2)
    assert len(more) == 5 and all(k in more for k in first)
    restored.mark_published()
    assert restored.unpublished_one_time_keys() == []
    assert restored.max_one_time_keys == 50
    fresh = restored.generate_one_time_keys(1)
    assert len(fresh) == 1 and fresh[0].key_id not in {k.key_id for k in more}


def test_fallback_key() -> None:
    device = DeviceCrypto.create()
    assert device.current_fallback_key() is None
    otks = device.generate_one_time_keys(1)
    fallback = device.generate_fallback_key()
    verify_one_time_key(device.signing_key, fallback)
    assert device.current_fallback_key() == fallback
    assert fallback.key_id not in {k.key_id for k in otks}
    device.mark_published()
    assert device.current_fallback_key() is None
    rotated = device.generate_fallback_key()
    assert rotated.key != fallback.key


def test_pickle_round_trip_and_wrong_key() -> None:
    device = DeviceCrypto.create()
    key = os.urandom(32)
    pickle = device.pickle(key)
    restored = DeviceCrypto.from_pickle(pickle, key)
    assert (restored.identity_key, restored.signing_key) == (
        device.identity_key,
        device.signing_key,
    )
    with pytest.raises(CryptoError):
        DeviceCrypto.from_pickle(pickle, os.urandom(32))
    with pytest.raises(CryptoError):
        DeviceCrypto.from_pickle(pickle, key[:16])
    with pytest.raises(CryptoError):
        device.pickle(b"short")


def test_bad_one_time_key_cannot_start_a_session() -> None:
    device = DeviceCrypto.create()
    with pytest.raises(CryptoError):
        device.create_outbound_session(DeviceCrypto.create().identity_key, "not a key")
    with pytest.raises(CryptoError):
        # An all-zero key would make the exchange non-contributory.
        device.create_outbound_session(DeviceCrypto.create().identity_key, "A" * 43)
