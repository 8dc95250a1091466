from __future__ import annotations

import sqlite3
import stat

import pytest

from tidings.crypto import AccountKey, DeviceCrypto, OpenSessions, PeerSessions, SessionManager
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


PEER = ("+15550100002", 1)


def _sending_peer(store: ProfileStore) -> tuple[PeerSessions, object]:
    with store.transaction() as state:
        return state.sending_peers([PEER])[PEER]


def _open_session(tmp_path):
    """A profile holding a session with one peer, kept unpickled by a committed send."""
    me, them = DeviceCrypto.create(), DeviceCrypto.create()
    (otk,) = them.generate_one_time_keys(1)
    store = ProfileStore.create(tmp_path / "p")
    peer = PeerSessions()
    SessionManager(me, store.session_pickle_key).start_session(peer, them.identity_key, otk.key)
    with store.transaction() as state:
        state.save_peer(*PEER, peer)
    with store.transaction() as state:
        loaded, session = state.sending_peers([PEER])[PEER]
        assert session is None  # nothing kept yet: read from the record
        batch = OpenSessions(store.session_pickle_key)
        batch.encrypt(loaded, b"first")
        [live] = batch.close().values()
        state.save_peer(*PEER, loaded, live)
    return store, live


def test_a_sent_session_is_kept_unpickled_once_its_transaction_commits(tmp_path) -> None:
    store, live = _open_session(tmp_path)
    peer, session = _sending_peer(store)
    assert session is live
    assert peer.sessions[0].session_id == live.session_id
    store.close()


def test_a_kept_session_is_dropped_when_its_transaction_rolls_back(tmp_path) -> None:
    store, live = _open_session(tmp_path)
    with pytest.raises(RuntimeError), store.transaction() as state:
        peer, session = state.sending_peers([PEER])[PEER]
        batch = OpenSessions(store.session_pickle_key)
        batch.adopt(peer, session)
        batch.encrypt(peer, b"never sent")  # advances the live session past the disk
        state.save_peer(*PEER, peer, batch.close()[id(peer)])
        raise RuntimeError("crash before commit")
    # The advanced session is gone; the next send starts from the record on disk.
    peer, session = _sending_peer(store)
    assert session is None
    assert peer.sessions[0].session_id == live.session_id
    store.close()


def test_a_kept_session_is_not_used_once_another_writer_changed_the_record(tmp_path) -> None:
    store, live = _open_session(tmp_path)
    # Another process (say, `listen` decrypting a reply) writes the record meanwhile.
    other = ProfileStore.open(tmp_path / "p")
    with other.transaction() as state:
        state.save_peer(*PEER, state.peer(*PEER))
    other.close()
    peer, session = _sending_peer(store)
    assert session is None and peer.sessions[0].session_id == live.session_id
    # A write without a live session through this handle also ends the keeping.
    store2, _live = _open_session(tmp_path / "again")
    with store2.transaction() as state:
        state.save_peer(*PEER, state.peer(*PEER))
    assert _sending_peer(store2)[1] is None
    store.close()
    store2.close()


def test_session_identities_read_many_peers_at_once_and_see_other_writers(tmp_path) -> None:
    store, _live = _open_session(tmp_path)
    peer, _session = _sending_peer(store)
    with store.transaction() as state:
        state.save_peer("+15550100003", 1, PeerSessions(identity_key="no-session-yet"))
    asked = [PEER, ("+15550100003", 1), ("+15550100004", 1)]
    with store.snapshot() as state:
        assert state.session_identities(asked) == {PEER: peer.identity_key}
    # Another process replaces the peer (a new device under the old id): the record is read
    # again, not the one kept in memory.
    other = ProfileStore.open(tmp_path / "p")
    with other.transaction() as state:
        replaced = state.peer(*PEER)
        replaced.identity_key = "their-new-identity"
        state.save_peer(*PEER, replaced)
    other.close()
    with store.snapshot() as state:
        assert state.session_identities(asked) == {PEER: "their-new-identity"}
    store.close()


def test_kept_sessions_are_bounded(tmp_path) -> None:
    store, _live = _open_session(tmp_path)
    store._live_limit = 0
    _sending_peer(store)  # takes it out; nothing puts it back
    with store.transaction() as state:
        peer, session = state.sending_peers([PEER])[PEER]
        assert session is None
        batch = OpenSessions(store.session_pickle_key)
        batch.encrypt(peer, b"x")
        state.save_peer(*PEER, peer, batch.close()[id(peer)])
    assert len(store._live) == 0
    store.close()


def _outgoing(message_id: str) -> StoredMessage:
    return StoredMessage(
        message_id, "+15550100002", "out", "+15550100001", 1, {"text": "hi"}, 1, "sending"
    )


def test_marking_sent_never_steps_back_over_a_receipt_that_came_first(tmp_path) -> None:
    from types import SimpleNamespace

    from tidings.sdk.outgoing import Sender

    store = ProfileStore.create(tmp_path / "p")
    quiet, receipted = _outgoing("m1"), _outgoing("m2")
    with store.transaction() as state:
        written = {m.key: state.put_message(m) for m in (quiet, receipted)}
    # A delivery receipt is applied (say, by `listen`) before the sender marks m2 sent.
    with store.transaction() as state:
        stored = state.message(receipted.key)
        assert stored is not None
        stored.apply_receipt("delivered", "+15550100002", 1, 2)
        state.put_message(stored)
    Sender(SimpleNamespace(store=store))._mark_sent([quiet, receipted], written)  # type: ignore[arg-type]
    with store.transaction() as state:
        assert [m.status for m in state.messages()] == ["sent", "delivered"]
    store.close()


def test_a_snapshot_reads_what_was_committed_and_refuses_writes(tmp_path) -> None:
    store = ProfileStore.create(tmp_path / "p")
    with store.transaction() as state:
        state.set_token("t1")
    before = store.commits
    with store.snapshot() as state:
        assert state.token() == "t1"
        with pytest.raises(sqlite3.OperationalError):
            state.set_token("t2")
    assert store.commits == before
    with store.transaction() as state:  # writing works again afterwards
        state.set_token("t3")
    with store.snapshot() as state:
        assert state.token() == "t3"
    store.close()
