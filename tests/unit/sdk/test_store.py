from __future__ import annotations

import sqlite3
import stat

import pytest

from tidings.crypto import AccountKey, DeviceCrypto, PeerSessions
from tidings.sdk import ProfileStore, SdkError, StoredMessage
from tidings.sdk.store import MASTER_KEY_FILE, STATE_FILE


def test_records_are_sealed_and_bound_to_their_name(tmp_path) -> None:
    store = ProfileStore.create(tmp_path / "p")
    device = DeviceCrypto.create()
    with store.transaction() as state:
        state.save_account(device)
        state.save_account_key(AccountKey.generate())
        state.set_token("tdv_super-secret-token")
        state.save_peer("+15550100002", 1, PeerSessions(identity_key=device.identity_key))
        state.put_message(
            StoredMessage(
                "m1", "+15550100002", "out", "+15550100001", 1, {"text": "psst"}, 1, "sent"
            )
        )
    store.close()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "p").iterdir())
    for secret in (b"tdv_super-secret-token", b"psst", device.identity_key.encode()):
        assert secret not in raw
    assert stat.S_IMODE((tmp_path / "p" / MASTER_KEY_FILE).stat().st_mode) == 0o600

    # A blob copied over another record's place fails to open.
    db = sqlite3.connect(tmp_path / "p" / STATE_FILE)
    (token_blob,) = db.execute("SELECT blob FROM records WHERE name = 'token'").fetchone()
    db.execute("UPDATE records SET blob = ? WHERE name = 'account'", (token_blob,))
    db.commit()
    db.close()
    store = ProfileStore.open(tmp_path / "p")
    with store.transaction() as state:
        assert state.token() == "tdv_super-secret-token"
        with pytest.raises(SdkError):
            state.account()
        (message,) = state.messages()
        assert message.text == "psst"
    store.close()


def test_failed_transaction_changes_nothing(tmp_path) -> None:
    store = ProfileStore.create(tmp_path / "p")
    with pytest.raises(RuntimeError), store.transaction() as state:
        state.set_token("t")
        raise RuntimeError("crash before commit")
    with store.transaction() as state, pytest.raises(SdkError):
        state.token()
    store.close()


def test_a_registered_profile_is_never_overwritten(tmp_path) -> None:
    store = ProfileStore.create(tmp_path / "p")
    with store.transaction() as state:
        state.set_meta("status", "active")
    store.close()
    with pytest.raises(SdkError) as refused:
        ProfileStore.create(tmp_path / "p")
    assert refused.value.code == "profile_exists"
    with pytest.raises(SdkError) as missing:
        ProfileStore.open(tmp_path / "nothing-here")
    assert missing.value.code == "not_registered"
