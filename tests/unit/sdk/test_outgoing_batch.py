"""The send path's encryption step on a real profile: its ratchets are on disk before any
envelope is handed back for posting, and the envelopes it builds without validation are what
the wire model builds."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from tidings.crypto import (
    DeviceCrypto,
    DeviceEntry,
    PeerSessions,
    SessionManager,
    SessionRecord,
    replay_steps,
)
from tidings.protocol import api
from tidings.sdk import ProfileStore
from tidings.sdk.outgoing import OutgoingItem, Sender, _trusted_envelope
from tidings.sdk.store import State

ME = "+15550100001"
PEER = "+15550100002"


def _text(_phone: str, _device_id: int) -> tuple[str, dict[str, object]]:
    return "message", {"type": "text", "text": {"body": "hi"}}


def _sender_with_sessions(tmp_path, count: int) -> tuple[Sender, list, ProfileStore]:
    """A sender whose profile holds a started session with `count` devices of PEER."""
    store = ProfileStore.create(tmp_path / "me")
    me = DeviceCrypto.create()
    manager = SessionManager(me, store.session_pickle_key)
    targets = []
    with store.transaction() as state:
        for device_id in range(1, count + 1):
            them = DeviceCrypto.create()
            (otk,) = them.generate_one_time_keys(1)
            peer = PeerSessions()
            manager.start_session(peer, them.identity_key, otk.key)
            state.save_peer(PEER, device_id, peer)
            targets.append((PEER, DeviceEntry(device_id, them.identity_key, "unused")))
    client = SimpleNamespace(store=store, phone=ME, device_id=9, now_ms=lambda: 1_700_000_000_000)
    return Sender(client), targets, store  # type: ignore[arg-type]


def _on_disk(tmp_path, device_id: int) -> str:
    """The active session's pickle as another process would read it: committed rows only."""
    other = ProfileStore.open(tmp_path / "me")
    try:
        with other.snapshot() as state:
            return state.peer(PEER, device_id).sessions[0].pickle
    finally:
        other.close()


def test_a_batch_commits_its_advanced_ratchets_before_handing_back_the_envelopes(
    tmp_path,
) -> None:
    sender, targets, store = _sender_with_sessions(tmp_path, 2)
    before = [_on_disk(tmp_path, device_id) for device_id in (1, 2)]
    for round_ in range(2):  # the second round encrypts with the sessions kept unpickled
        items = [OutgoingItem(PEER, f"wamid.{round_}-{n}", _text) for n in range(3)]
        commits = store.commits
        envelopes, failed, _written = sender._encrypt_batch(items, [(i, targets) for i in range(3)])
        assert not failed and store.commits == commits + 1
        assert [len(envelopes[i]) for i in range(3)] == [2, 2, 2]
        # What a crash right now would restart from: each session as the batch left it (the
        # one kept unpickled for the next batch), moved on by what its stored count reserves
        # ahead: past every message it encrypted.
        for device_id in (1, 2):
            stored = _on_disk(tmp_path, device_id)
            assert stored != before[device_id - 1]
            kept = store._live[f"peer/{PEER}/{device_id}"]
            assert kept.stored >= kept.live.steps
            key = store.session_pickle_key
            record = SessionRecord(kept.live.session.session_id, kept.live.session.pickle(key))
            assert stored == replay_steps(record, kept.stored - kept.live.steps, key).pickle
            before[device_id - 1] = stored
    store.close()


def test_a_batch_that_fails_to_commit_hands_back_nothing(tmp_path, monkeypatch) -> None:
    sender, targets, store = _sender_with_sessions(tmp_path, 1)
    before = _on_disk(tmp_path, 1)

    def broken(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(State, "save_peers", broken)
    with pytest.raises(OSError):
        sender._encrypt_batch([OutgoingItem(PEER, "wamid.x", _text)], [(0, targets)])
    assert _on_disk(tmp_path, 1) == before
    store.close()


def test_a_trusted_envelope_is_what_the_model_builds() -> None:
    made = _trusted_envelope("+15550100002", 3, 1, "AAEC")
    validated = api.OutgoingEnvelope(phone="+15550100002", device_id=3, type=1, body="AAEC")
    assert made == validated
    assert made.model_dump_json() == validated.model_dump_json()
    assert made.model_fields_set == validated.model_fields_set
    assert made.__pydantic_extra__ is None and made.__pydantic_private__ is None
    request = api.SendRequest(message_id="wamid.x", to="+15550100002", envelopes=[made])
    assert api.SendRequest.model_validate_json(request.model_dump_json()) == request
    with pytest.raises(ValidationError):  # frozen, as the model is
        made.body = "changed"  # type: ignore[misc]
