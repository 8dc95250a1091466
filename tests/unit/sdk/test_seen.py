"""Seen-id sets as rows of the profile: recorded with their transaction, kept across restarts,
bounded, stored as keyed hashes, and imported from the sealed records of earlier versions."""

from __future__ import annotations

import sqlite3

import pytest

from tidings.crypto import SeenMessages
from tidings.sdk import ProfileStore
from tidings.sdk.seen import SeenIds
from tidings.sdk.store import SEEN_ENVELOPES, SEEN_MESSAGES, STATE_FILE

ENVELOPE = "+15550100002:1:5f2b0c7e9a3d4e1f8b6a2c4d0e9f1a2b"


def test_an_id_is_new_once_and_stays_seen_after_a_restart(tmp_path) -> None:
    store = ProfileStore.create(tmp_path / "p")
    with store.transaction() as state:
        seen = state.seen(SEEN_ENVELOPES)
        assert ENVELOPE not in seen
        assert seen.check_and_add(ENVELOPE)
        assert not seen.check_and_add(ENVELOPE)
        assert ENVELOPE in seen
        # Each set is its own: the same id is new to another.
        assert state.seen(SEEN_MESSAGES).check_and_add(ENVELOPE)
    store.close()

    store = ProfileStore.open(tmp_path / "p")
    with store.snapshot() as state:
        assert ENVELOPE in state.seen(SEEN_ENVELOPES)
    with store.transaction() as state:
        assert not state.seen(SEEN_ENVELOPES).check_and_add(ENVELOPE)
    store.close()


def test_an_id_added_in_a_rolled_back_transaction_was_never_seen(tmp_path) -> None:
    store = ProfileStore.create(tmp_path / "p")
    with pytest.raises(RuntimeError), store.transaction() as state:
        assert state.seen(SEEN_ENVELOPES).check_and_add(ENVELOPE)
        raise RuntimeError("the decryption's write failed")
    with store.transaction() as state:
        assert state.seen(SEEN_ENVELOPES).check_and_add(ENVELOPE)
    store.close()


def test_the_ids_are_not_on_disk_in_the_clear(tmp_path) -> None:
    store = ProfileStore.create(tmp_path / "p")
    with store.transaction() as state:
        state.seen(SEEN_ENVELOPES).check_and_add(ENVELOPE)
    store.close()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "p").iterdir())
    assert b"5f2b0c7e9a3d4e1f8b6a2c4d0e9f1a2b" not in raw
    assert b"+15550100002" not in raw


def test_a_set_forgets_its_oldest_ids_past_its_bound(tmp_path) -> None:
    store = ProfileStore.create(tmp_path / "p")
    limit = 100
    ids = [f"id-{n}" for n in range(1000)]
    with store.transaction() as state:
        seen = SeenIds(state._db, SEEN_ENVELOPES, store.seen_key, limit=limit)
        for item_id in ids:
            assert seen.check_and_add(item_id)
        other = state.seen(SEEN_MESSAGES)
        assert other.check_and_add("kept elsewhere")
    db = sqlite3.connect(tmp_path / "p" / STATE_FILE)
    (held,) = db.execute("SELECT count(*) FROM seen WHERE kind = ?", (SEEN_ENVELOPES,)).fetchone()
    db.close()
    # Trimmed once in a while, not at every addition: within the bound plus one interval.
    assert limit <= held < limit + 256
    with store.snapshot() as state:
        seen = SeenIds(state._db, SEEN_ENVELOPES, store.seen_key, limit=limit)
        assert all(item_id in seen for item_id in ids[-limit:])
        assert ids[0] not in seen
        # Trimming one set leaves the others alone.
        assert "kept elsewhere" in state.seen(SEEN_MESSAGES)
    store.close()


def test_sets_filled_in_turn_are_both_kept_within_their_bound(tmp_path) -> None:
    """A device adds an envelope's id, then its message's, for every message: positions
    alternate between the two sets, and each must still be trimmed."""
    store = ProfileStore.create(tmp_path / "p")
    limit = 50
    with store.transaction() as state:
        envelopes = SeenIds(state._db, SEEN_ENVELOPES, store.seen_key, limit=limit)
        shown = SeenIds(state._db, SEEN_MESSAGES, store.seen_key, limit=limit)
        for n in range(2000):
            assert envelopes.check_and_add(f"+15550100002:1:{n}")
            assert shown.check_and_add(f"+15550100002/{n}")
    db = sqlite3.connect(tmp_path / "p" / STATE_FILE)
    held = dict(db.execute("SELECT kind, count(*) FROM seen GROUP BY kind").fetchall())
    db.close()
    assert set(held) == {SEEN_ENVELOPES, SEEN_MESSAGES}
    assert all(limit <= count < limit + 256 for count in held.values()), held
    store.close()


def test_a_profile_of_an_earlier_version_keeps_what_it_saw(tmp_path) -> None:
    store = ProfileStore.create(tmp_path / "p")
    before = SeenMessages()
    for item_id in ("older", ENVELOPE):
        before.check_and_add(item_id)
    shown = SeenMessages()
    shown.check_and_add("+15550100002/m1")
    with store.transaction() as state:  # the sealed records earlier versions wrote
        state.put(SEEN_ENVELOPES, before.to_json().encode())
        state.put(SEEN_MESSAGES, shown.to_json().encode())
    store.close()

    store = ProfileStore.open(tmp_path / "p")
    with store.transaction() as state:
        assert not state.seen(SEEN_ENVELOPES).check_and_add(ENVELOPE)
        assert not state.seen(SEEN_ENVELOPES).check_and_add("older")
        assert not state.seen(SEEN_MESSAGES).check_and_add("+15550100002/m1")
        assert state.get(SEEN_ENVELOPES) is None and state.get(SEEN_MESSAGES) is None
    store.close()
