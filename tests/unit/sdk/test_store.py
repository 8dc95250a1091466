from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from tidings.crypto import (
    MAX_UNPICKLED_STEPS,
    AccountKey,
    DeviceCrypto,
    OpenSessions,
    PeerSessions,
    SessionManager,
    SessionRecord,
    replay_steps,
)
from tidings.sdk import ProfileStore, SdkError, StoredMessage
from tidings.sdk.store import MASTER_KEY_FILE, STATE_FILE, STEPS_RESERVED


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


def _started(tmp_path) -> tuple[ProfileStore, DeviceCrypto, DeviceCrypto]:
    """A profile (us) holding a new outbound session with one peer device (them)."""
    me, them = DeviceCrypto.create(), DeviceCrypto.create()
    (otk,) = them.generate_one_time_keys(1)
    store = ProfileStore.create(tmp_path / "p")
    peer = PeerSessions()
    SessionManager(me, store.session_pickle_key).start_session(peer, them.identity_key, otk.key)
    with store.transaction() as state:
        state.save_peer(*PEER, peer)
    return store, me, them


def _open_session(tmp_path):
    """A profile holding a session with one peer, kept unpickled by a committed send."""
    store, _me, _them = _started(tmp_path)
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
    assert peer.sessions[0].session_id == live.session.session_id
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
    assert peer.sessions[0].session_id == live.session.session_id
    store.close()


def test_a_kept_session_is_not_used_once_another_writer_changed_the_record(tmp_path) -> None:
    store, live = _open_session(tmp_path)
    # Another process (say, `listen` decrypting a reply) writes the record meanwhile.
    other = ProfileStore.open(tmp_path / "p")
    with other.transaction() as state:
        state.save_peer(*PEER, state.peer(*PEER))
    other.close()
    peer, session = _sending_peer(store)
    assert session is None and peer.sessions[0].session_id == live.session.session_id
    # A write without a live session through this handle also ends the keeping.
    store2, _live = _open_session(tmp_path / "again")
    with store2.transaction() as state:
        state.save_peer(*PEER, state.peer(*PEER))
    assert _sending_peer(store2)[1] is None
    store.close()
    store2.close()


def _send_on_kept(
    store: ProfileStore, texts: list[bytes], *, kept_or_not: bool = False
) -> tuple[list, object]:
    """One send transaction on the kept session (`kept_or_not`: or on the record, if none is
    kept): the wires, and what it keeps."""
    with store.transaction() as state:
        peer, kept = state.sending_peers([PEER])[PEER]
        assert kept is not None or kept_or_not
        batch = OpenSessions(store.session_pickle_key)
        if kept is not None:
            batch.adopt(peer, kept)
        wires = [batch.encrypt(peer, text) for text in texts]
        state.save_peer(*PEER, peer, batch.close()[id(peer)])
    return wires, store._live[_NAME].live


_NAME = f"peer/{PEER[0]}/{PEER[1]}"


def _raw_record(store: ProfileStore) -> tuple[bytes, int | None]:
    blob = store._db.execute("SELECT blob FROM records WHERE name = ?", (_NAME,)).fetchone()[0]
    steps = store._db.execute("SELECT steps FROM ratchet_steps WHERE name = ?", (_NAME,)).fetchone()
    return blob, None if steps is None else steps[0]


def _ahead(store: ProfileStore, kept, steps: int) -> str:
    """The pickle of the kept session `steps` further along its sending chain."""
    key = store.session_pickle_key
    record = SessionRecord(kept.session.session_id, kept.session.pickle(key))
    return replay_steps(record, steps, key).pickle


def test_a_kept_session_that_sends_again_writes_its_steps_and_not_its_pickle(tmp_path) -> None:
    store, _live = _open_session(tmp_path)
    blob, steps = _raw_record(store)
    assert steps is None
    _wires, kept = _send_on_kept(store, [b"two", b"three"])
    # Two steps taken; the count stored reserves as many again, less one.
    assert _raw_record(store) == (blob, 3)
    _wires, kept = _send_on_kept(store, [b"four"])
    assert _raw_record(store) == (blob, 3) and kept.steps == 3  # within it: nothing written
    _wires, kept = _send_on_kept(store, [b"five"])
    assert _raw_record(store) == (blob, 7) and kept.steps == 4
    # Another process (or this one after a crash) reads the record with its steps replayed:
    # the session kept in memory, moved on to the end of its reservation (never behind it).
    at_reservation = _ahead(store, kept, 3)
    other = ProfileStore.open(tmp_path / "p")
    with other.snapshot() as state:
        assert state.peer(*PEER).sessions[0].pickle == at_reservation
    with other.transaction() as state:
        peer, none_kept = state.sending_peers([PEER])[PEER]
        assert none_kept is None
        assert peer.sessions[0].pickle == at_reservation
    other.close()
    # Any other write of the record (a decrypt, a new session) holds the sessions as they
    # are, advanced: no steps are left over to replay twice.
    with store.transaction() as state:
        state.save_peer(*PEER, state.peer(*PEER))
    new_blob, steps = _raw_record(store)
    assert new_blob != blob and steps is None
    with store.snapshot() as state:
        assert state.peer(*PEER).sessions[0].pickle == at_reservation
    store.close()


def test_the_stored_count_stays_ahead_of_a_kept_session_and_is_written_in_runs(tmp_path) -> None:
    store, _live = _open_session(tmp_path)
    writes: list[str] = []
    store._db.set_trace_callback(
        lambda sql: writes.append(sql) if sql.startswith("INSERT INTO ratchet_steps") else None
    )
    for sent in range(1, MAX_UNPICKLED_STEPS + 1):
        _wires, kept = _send_on_kept(store, [b"one more"])
        assert kept.steps == sent
        assert _raw_record(store)[1] >= kept.steps  # never a key a reader could use again
    store._db.set_trace_callback(None)
    # At steps 1, 2, 4 and 8 (reserving as many again), then every STEPS_RESERVED.
    assert len(writes) == 4 + (MAX_UNPICKLED_STEPS - 8) // STEPS_RESERVED
    store.close()


def test_a_session_in_a_conversation_keeps_an_exact_count(tmp_path) -> None:
    """Sent on once after each reply (the record re-read and pickled in between), a session
    reserves nothing: a reader replays no step it does not need."""
    store, _live = _open_session(tmp_path)
    for _reply in range(3):
        _wires, kept = _send_on_kept(store, [b"answer"])
        assert _raw_record(store)[1] == kept.steps == 1
        with store.transaction() as state:  # the reply, decrypted: the record written anew
            state.save_peer(*PEER, state.peer(*PEER))
        _send_on_kept(store, [b"pickled again"], kept_or_not=True)
    store.close()


def test_after_a_crash_the_next_send_carries_on_the_chain(tmp_path) -> None:
    """Messages sent on kept sessions, a restart (nothing kept), more messages: the peer reads
    every one in order, so no message key was used twice; the indices the stored count
    reserved and nobody used cost the peer only a few kept keys."""
    store, me, them = _started(tmp_path)
    wires = []
    for round_ in range(3):
        with store.transaction() as state:
            loaded, kept = state.sending_peers([PEER])[PEER]
            batch = OpenSessions(store.session_pickle_key)
            if kept is not None:
                batch.adopt(loaded, kept)
            wires += [batch.encrypt(loaded, f"before {round_}.{n}".encode()) for n in range(2)]
            state.save_peer(*PEER, loaded, batch.close()[id(loaded)])
    assert _raw_record(store)[1] == 7  # 4 steps taken, and as many again reserved, less one
    store.close()  # the process dies; its kept sessions with it
    store = ProfileStore.open(tmp_path / "p")
    with store.transaction() as state:
        loaded, kept = state.sending_peers([PEER])[PEER]
        assert kept is None
        batch = OpenSessions(store.session_pickle_key)
        wires.append(batch.encrypt(loaded, b"after"))
        state.save_peer(*PEER, loaded, batch.close()[id(loaded)])
    assert _raw_record(store)[1] is None  # unpickled after the restart: pickled again
    store.close()
    receiver = SessionManager(them, os.urandom(32))
    theirs = PeerSessions()
    read = [receiver.decrypt(theirs, me.identity_key, *wire).decode() for wire in wires]
    assert read == [f"before {r}.{n}" for r in range(3) for n in range(2)] + ["after"]


def test_a_kept_session_is_not_used_once_another_sender_stepped_it(tmp_path) -> None:
    store, _live = _open_session(tmp_path)
    _send_on_kept(store, [b"two"])
    # A second process sends on the same record: same bytes, one step further.
    other = ProfileStore.open(tmp_path / "p")
    _send_on_kept(other, [b"from the other"], kept_or_not=True)
    _send_on_kept(other, [b"and again"])
    other_steps = _raw_record(other)[1]
    other.close()
    assert other_steps == 1
    with store.transaction() as state:
        _peer, kept = state.sending_peers([PEER])[PEER]
        assert kept is None  # our copy is behind the disk now
    store.close()


def test_steps_are_written_only_for_the_record_they_were_read_with(tmp_path) -> None:
    store, _live = _open_session(tmp_path)
    _wires, kept = _send_on_kept(store, [b"two"])
    with pytest.raises(ValueError), store.transaction() as state:
        # Not handed out by `sending_peers` in this transaction: nothing says which record
        # these steps are ahead of.
        state.save_peer(*PEER, state.peer(*PEER), kept)
    with pytest.raises(RuntimeError), store.transaction() as state:
        peer, kept = state.sending_peers([PEER])[PEER]
        batch = OpenSessions(store.session_pickle_key)
        batch.adopt(peer, kept)
        for _ in range(STEPS_RESERVED):  # past the reservation: a new count is written
            batch.encrypt(peer, b"never sent")
        state.save_peer(*PEER, peer, batch.close()[id(peer)])
        raise RuntimeError("crash before commit")
    assert _raw_record(store)[1] == 1  # the rolled-back count never reached the disk
    _send_on_kept(store, [b"three"], kept_or_not=True)  # nothing kept: pickled, then kept
    _send_on_kept(store, [b"four"])
    with pytest.raises(ValueError), store.transaction() as state:
        # Handed out with its session a step ahead, the peer's record is a step behind:
        # written alone it would send the next message under a used key.
        peer, _kept = state.sending_peers([PEER])[PEER]
        state.save_peer(*PEER, peer)
    with store.transaction() as state:
        state.delete_peer(*PEER)
    assert store._db.execute("SELECT count(*) FROM ratchet_steps").fetchone()[0] == 0
    store.close()


def _records_read(store: ProfileStore, step) -> tuple[object, list[str]]:
    """What `step` returns, and the statements it ran that read peer records."""
    seen: list[str] = []
    store._db.set_trace_callback(seen.append)
    try:
        result = step()
    finally:
        store._db.set_trace_callback(None)
    return result, [sql for sql in seen if "FROM records" in sql]


def test_kept_sessions_are_trusted_without_reading_while_nobody_else_wrote(tmp_path) -> None:
    store, _live = _open_session(tmp_path)
    _wires, kept = _send_on_kept(store, [b"two"])

    def check_and_take():
        with store.snapshot() as state:
            identities = state.session_identities([PEER])
        return identities, _send_on_kept(store, [b"more"])[1]

    (identities, again), reads = _records_read(store, check_and_take)
    assert set(identities) == {PEER}
    assert again.session is kept.session and again.steps == 2 and reads == []
    # Another connection writes something else: the kept session is still right, but that
    # is now checked against the stored record before it is used.
    other = ProfileStore.open(tmp_path / "p")
    with other.transaction() as state:
        state.set_meta("unrelated", "x")
    other.close()
    (identities, again), reads = _records_read(store, check_and_take)
    assert again.session is kept.session and again.steps == 3 and len(reads) == 2
    (identities, again), reads = _records_read(store, check_and_take)
    assert again.steps == 4 and reads == []  # vouched for again by the last transaction
    store.close()


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


def test_an_unsynced_transaction_commits_without_the_fsync_and_leaves_the_rest_synced(
    tmp_path,
) -> None:
    store = ProfileStore.create(tmp_path / "p")

    def synchronous() -> int:
        return int(store._db.execute("PRAGMA synchronous").fetchone()[0])

    assert synchronous() == 2  # FULL: every commit waits for the disk
    with store.transaction(synced=False) as state:
        assert synchronous() == 1  # NORMAL: this commit does not
        state.put_json("outbox/test", ["kept"])
    assert synchronous() == 2
    with pytest.raises(RuntimeError), store.transaction(synced=False) as state:
        state.put_json("outbox/test", ["rolled back"])
        raise RuntimeError("boom")
    assert synchronous() == 2
    store.close()
    reopened = ProfileStore.open(tmp_path / "p")
    with reopened.snapshot() as state:
        assert state.get_json("outbox/test") == ["kept"]
    reopened.close()
