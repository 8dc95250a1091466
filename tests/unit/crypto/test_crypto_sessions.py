from __future__ import annotations

import os

import pytest

from tidings.crypto import (
    CryptoError,
    DecryptionFailed,
    DeviceCrypto,
    DuplicateMessage,
    LiveSession,
    OpenSessions,
    PeerSessions,
    SeenMessages,
    SessionManager,
    replay_steps,
    verify_one_time_key,
)
from tidings.crypto.sessions import MAX_SESSIONS_PER_PEER
from tidings.protocol.api import ClaimedKey, OneTimeKey
from tidings.protocol.e2e import Address, Plaintext

Wire = tuple[int, str]


class Party:
    """One device with its sessions towards a single peer device."""

    def __init__(self) -> None:
        self.device = DeviceCrypto.create()
        self.pickle_key = os.urandom(32)
        self.manager = SessionManager(self.device, self.pickle_key)
        self.peer = PeerSessions()

    def publish_otk(self) -> OneTimeKey:
        (otk,) = self.device.generate_one_time_keys(1)
        self.device.mark_published()
        return otk

    def start(self, other: Party, otk: OneTimeKey, *, fallback: bool = False) -> None:
        claimed = ClaimedKey(
            key_id=otk.key_id, key=otk.key, signature=otk.signature, fallback=fallback
        )
        verify_one_time_key(other.device.signing_key, claimed)
        self.manager.start_session(self.peer, other.device.identity_key, claimed.key)

    def send(self, text: str) -> Wire:
        return self.manager.encrypt(self.peer, text.encode())

    def receive(self, other: Party, wire: Wire) -> str:
        return self.manager.decrypt(self.peer, other.device.identity_key, *wire).decode()


def connected() -> tuple[Party, Party]:
    a, b = Party(), Party()
    a.start(b, b.publish_otk())
    first = a.send("hello")
    assert first[0] == 0
    assert b.receive(a, first) == "hello"
    reply = b.send("hi back")
    assert reply[0] == 1
    assert a.receive(b, reply) == "hi back"
    return a, b


def test_first_contact_and_many_messages_both_ways() -> None:
    a, b = connected()
    assert a.manager.has_session(a.peer) and b.manager.has_session(b.peer)
    assert a.peer.active_session_id == b.peer.active_session_id
    for round_no in range(20):
        burst = [a.send(f"a{round_no}.{i}") for i in range(round_no % 4 + 1)]
        assert [b.receive(a, w) for w in burst] == [f"a{round_no}.{i}" for i in range(len(burst))]
        answers = [b.send(f"b{round_no}.{i}") for i in range(round_no % 3 + 1)]
        assert [a.receive(b, w) for w in answers] == [
            f"b{round_no}.{i}" for i in range(len(answers))
        ]
    assert len(a.peer.sessions) == len(b.peer.sessions) == 1


def test_messages_before_a_reply_stay_pre_key_and_all_decrypt() -> None:
    a, b = Party(), Party()
    a.start(b, b.publish_otk())
    wires = [a.send(f"m{i}") for i in range(3)]
    assert [w[0] for w in wires] == [0, 0, 0]
    assert [b.receive(a, w) for w in wires] == ["m0", "m1", "m2"]
    assert len(b.peer.sessions) == 1


def test_crossed_initiation_settles() -> None:
    a, b = Party(), Party()
    a.start(b, b.publish_otk())
    b.start(a, a.publish_otk())
    from_a, from_b = a.send("a first"), b.send("b first")
    assert from_a[0] == from_b[0] == 0
    assert b.receive(a, from_a) == "a first"
    assert a.receive(b, from_b) == "b first"
    assert len(a.peer.sessions) == len(b.peer.sessions) == 2
    for i in range(5):
        assert b.receive(a, a.send(f"a{i}")) == f"a{i}"
        assert a.receive(b, b.send(f"b{i}")) == f"b{i}"
    assert a.peer.active_session_id == b.peer.active_session_id
    assert a.send("x")[0] == 1 and b.send("y")[0] == 1


def _plaintext(msg_id: str) -> bytes:
    return (
        Plaintext(
            id=msg_id,
            ts=1,
            sender=Address(phone="+1", device_id=1),
            recipient=Address(phone="+2", device_id=1),
            to="+2",
            content={"text": "pay 10"},
        )
        .model_dump_json()
        .encode()
    )


def test_fallback_key_replay_is_detected() -> None:
    a, b = Party(), Party()
    fallback = b.device.generate_fallback_key()
    b.device.mark_published()
    a.start(b, fallback, fallback=True)
    wire = a.manager.encrypt(a.peer, _plaintext("msg-1"))
    seen = SeenMessages()

    def deliver(peer: PeerSessions) -> bool:
        raw = b.manager.decrypt(peer, a.device.identity_key, *wire)
        return seen.check_and_add(Plaintext.model_validate_json(raw).id)

    assert deliver(b.peer) is True
    # While B still holds the session, session_matches catches the replay.
    with pytest.raises(DuplicateMessage):
        deliver(b.peer)
    # Without it, the fallback key still opens a second session, so only the id check helps.
    assert deliver(PeerSessions()) is False


def test_one_time_key_replay_without_the_session_is_refused() -> None:
    a, b = Party(), Party()
    a.start(b, b.publish_otk())
    wire = a.send("once")
    assert b.receive(a, wire) == "once"
    with pytest.raises(DuplicateMessage):
        b.receive(a, wire)
    with pytest.raises(DecryptionFailed):
        b.manager.decrypt(PeerSessions(), a.device.identity_key, *wire)


def test_lost_session_state_is_recovered_by_a_reset() -> None:
    a, b = connected()
    account_before = b.device.pickle(b.pickle_key)
    b.peer = PeerSessions()  # B restored an old backup and lost its sessions with A
    lost = a.send("you will not read this")
    with pytest.raises(DecryptionFailed) as failure:
        b.receive(a, lost)
    assert failure.value.wedged is True
    assert b.peer == PeerSessions()
    assert b.device.pickle(b.pickle_key) == account_before

    now = 1_000_000
    assert b.manager.may_reset(b.peer, now)
    b.start(a, a.publish_otk())
    b.manager.mark_reset(b.peer, now)
    reset = b.send("session_reset")
    assert reset[0] == 0
    assert a.receive(b, reset) == "session_reset"
    # A moved to the session that just worked; the old one is kept for late messages.
    assert a.peer.active_session_id == b.peer.active_session_id
    assert len(a.peer.sessions) == 2
    after = a.send("again")
    assert after[0] == 1
    assert b.receive(a, after) == "again"
    assert a.receive(b, b.send("and back")) == "and back"

    assert not b.manager.may_reset(b.peer, now + 60_000)
    assert b.manager.may_reset(b.peer, now + 3_600_000)
    assert b.manager.may_reset(b.peer, now + 10, min_interval_ms=10)


def test_session_cap_evicts_least_recently_used() -> None:
    a, b = Party(), Party()
    firsts: list[Wire] = []
    seconds: list[Wire] = []
    for i in range(MAX_SESSIONS_PER_PEER + 2):
        a.start(b, b.publish_otk())
        firsts.append(a.send(f"s{i}.0"))
        seconds.append(a.send(f"s{i}.1"))
    assert len(a.peer.sessions) == MAX_SESSIONS_PER_PEER
    for i, wire in enumerate(firsts):
        assert b.receive(a, wire) == f"s{i}.0"
    assert len(b.peer.sessions) == MAX_SESSIONS_PER_PEER
    assert b.peer.session_ids == a.peer.session_ids
    # Session 0 was evicted at B, and its one-time key is spent: nothing can read it now.
    with pytest.raises(DecryptionFailed):
        b.receive(a, seconds[0])
    # Using the oldest kept session makes it the most recent again on both sides.
    oldest = b.peer.session_ids[-1]
    assert b.receive(a, seconds[2]) == "s2.1"
    assert b.peer.active_session_id == oldest
    assert a.receive(b, b.send("via oldest")) == "via oldest"
    assert a.peer.active_session_id == oldest


def test_tampered_normal_message_leaves_state_intact() -> None:
    a, b = connected()
    kind, body = a.send("real")
    before = b.peer.to_json()
    raw = bytearray(body.encode())
    raw[-3] = ord("A") if raw[-3] != ord("A") else ord("B")
    with pytest.raises(DecryptionFailed) as failure:
        b.receive(a, (kind, raw.decode()))
    assert failure.value.wedged is True
    assert b.peer.to_json() == before
    assert b.receive(a, (kind, body)) == "real"


def test_tampered_pre_key_message_leaves_state_intact() -> None:
    a, b = Party(), Party()
    a.start(b, b.publish_otk())
    kind, body = a.send("first")
    account_before = b.device.pickle(b.pickle_key)
    raw = bytearray(body.encode())
    raw[-3] = ord("A") if raw[-3] != ord("A") else ord("B")
    with pytest.raises(DecryptionFailed):
        b.receive(a, (kind, raw.decode()))
    assert b.peer == PeerSessions()
    assert b.device.pickle(b.pickle_key) == account_before
    assert b.receive(a, (kind, body)) == "first"


@pytest.mark.parametrize("wire", [(2, "AAAA"), (1, "not base64"), (1, "AAAA"), (0, "AAAA")])
def test_malformed_messages(wire: Wire) -> None:
    a, b = connected()
    before = b.peer.to_json()
    with pytest.raises(DecryptionFailed):
        b.receive(a, wire)
    assert b.peer.to_json() == before


def test_encrypt_needs_a_session_and_identity_is_fixed() -> None:
    a, b = connected()
    with pytest.raises(CryptoError):
        a.manager.encrypt(PeerSessions(), b"x")
    stranger = Party()
    with pytest.raises(CryptoError):
        a.manager.decrypt(a.peer, stranger.device.identity_key, *b.send("x"))
    with pytest.raises(CryptoError):
        a.manager.start_session(a.peer, stranger.device.identity_key, stranger.publish_otk().key)
    with pytest.raises(CryptoError):
        SessionManager(a.device, b"short")


def test_peer_sessions_pickle_round_trip() -> None:
    a, b = connected()
    b.manager.mark_reset(b.peer, 42)
    stored_a, stored_b = a.peer.to_json(), b.peer.to_json()
    a.peer = PeerSessions.from_json(stored_a)
    b.peer = PeerSessions.from_json(stored_b)
    assert b.peer.last_reset_ms == 42
    assert b.peer.identity_key == a.device.identity_key
    assert b.receive(a, a.send("after restart")) == "after restart"
    assert a.receive(b, b.send("me too")) == "me too"

    wrong = SessionManager(a.device, os.urandom(32))
    with pytest.raises(CryptoError):
        wrong.encrypt(PeerSessions.from_json(stored_a), b"x")


@pytest.mark.parametrize("text", ["", "[]", '{"v": 2}', '{"v": 1}', '{"v":1,"sessions":3}'])
def test_peer_sessions_malformed_json(text: str) -> None:
    with pytest.raises(CryptoError):
        PeerSessions.from_json(text)


def test_device_account_survives_pickling_between_messages() -> None:
    a, b = Party(), Party()
    otk = b.publish_otk()
    b_pickle = b.device.pickle(b.pickle_key)
    a.start(b, otk)
    wire = a.send("to restored b")
    b.device = DeviceCrypto.from_pickle(b_pickle, b.pickle_key)
    b.manager = SessionManager(b.device, b.pickle_key)
    assert b.receive(a, wire) == "to restored b"


def test_seen_messages_bounded_and_serialisable() -> None:
    seen = SeenMessages(limit=3)
    assert seen.check_and_add("a")
    assert not seen.check_and_add("a")
    for msg_id in ("b", "c", "d"):
        assert seen.check_and_add(msg_id)
    assert "a" not in seen and len(seen) == 3
    restored = SeenMessages.from_json(seen.to_json())
    assert restored.limit == 3
    assert not restored.check_and_add("d")
    assert restored.check_and_add("a")
    assert "b" not in restored
    with pytest.raises(CryptoError):
        SeenMessages.from_json('{"v":1,"limit":3,"ids":[1]}')
    with pytest.raises(CryptoError):
        SeenMessages(limit=0)


def test_a_batch_encrypts_with_one_unpickled_session_and_writes_it_back_on_close() -> None:
    a, b = connected()
    before = a.peer.sessions[0].pickle
    batch = a.manager.batch()
    wires = [batch.encrypt(a.peer, f"batch {n}".encode()) for n in range(3)]
    # Until closed, the stored record is untouched (the batch's transaction saves it after).
    assert a.peer.sessions[0].pickle == before
    batch.close()
    assert a.peer.sessions[0].pickle != before
    assert [b.receive(a, wire) for wire in wires] == ["batch 0", "batch 1", "batch 2"]
    # The written-back session carries on from where the batch left it.
    assert b.receive(a, a.send("after")) == "after"


def test_a_batch_needs_a_session() -> None:
    with pytest.raises(CryptoError):
        Party().manager.batch().encrypt(PeerSessions(), b"nobody")


def test_a_batch_carries_on_with_a_session_kept_unpickled_from_the_last() -> None:
    a, b = connected()
    batch = a.manager.batch()
    first = batch.encrypt(a.peer, b"one")
    [kept] = batch.close().values()
    # Unpickled in that batch, its chain state was not known: the record holds it exactly.
    assert kept.steps == 0 and a.peer.sessions[0].session_id == kept.session.session_id
    written = a.peer.sessions[0].pickle
    again = a.manager.batch()
    again.adopt(a.peer, kept)
    second = again.encrypt(a.peer, b"two")
    third = again.encrypt(a.peer, b"three")
    [ahead] = again.close().values()
    # Kept, it encrypted on an active chain: the record is left alone, two steps behind.
    assert ahead.steps == 2 and ahead.session is kept.session
    assert a.peer.sessions[0].pickle == written
    assert [b.receive(a, w) for w in (first, second, third)] == ["one", "two", "three"]
    # The record advanced by its steps is the kept session, state for state.
    replayed = replay_steps(a.peer.sessions[0], 2, a.pickle_key)
    assert replayed.pickle == ahead.session.pickle(a.pickle_key)
    a.peer.sessions[0] = replayed
    assert b.receive(a, a.send("four")) == "four"


def test_a_kept_session_is_pickled_again_once_it_runs_too_far_ahead() -> None:
    a, b = connected()
    batch = a.manager.batch()
    wires = [batch.encrypt(a.peer, b"warm")]
    [live] = batch.close().values()
    for round_ in range(5):
        batch = OpenSessions(a.pickle_key, max_steps=3)
        batch.adopt(a.peer, live)
        before = a.peer.sessions[0].pickle
        wires.append(batch.encrypt(a.peer, f"r{round_}".encode()))
        [live] = batch.close().values()
        # Steps 1, 2, 3, then the fourth is pickled (0) and counting starts again.
        assert live.steps == [1, 2, 3, 0, 1][round_]
        assert (a.peer.sessions[0].pickle == before) == (live.steps != 0)
    assert [b.receive(a, w) for w in wires] == ["warm", "r0", "r1", "r2", "r3", "r4"]


def test_replaying_steps_reaches_the_state_that_encrypted_them() -> None:
    a, b = connected()
    a.send("the first after a reply draws a new ratchet key")
    start = a.peer.sessions[0]
    sent = [a.send(f"m{n}") for n in range(5)]
    assert replay_steps(start, 5, a.pickle_key).pickle == a.peer.sessions[0].pickle
    assert replay_steps(start, 0, a.pickle_key) is start
    with pytest.raises(CryptoError):
        replay_steps(start, -1, a.pickle_key)
    # After a reply the next step is random: that is why such a session is always pickled.
    b.receive(a, sent[0])
    a.receive(b, b.send("reply"))
    start = a.peer.sessions[0]
    a.send("new ratchet")
    assert replay_steps(start, 1, a.pickle_key).pickle != a.peer.sessions[0].pickle


def test_a_batch_refuses_a_session_that_is_not_the_active_one() -> None:
    a, _b = connected()
    other, _c = connected()
    assert other.manager.batch().close() == {}  # a batch that encrypted nothing keeps nothing
    stranger = LiveSession(other.manager._load(other.peer.sessions[0]))
    batch = a.manager.batch()
    with pytest.raises(CryptoError):
        batch.adopt(a.peer, stranger)
    with pytest.raises(CryptoError):
        batch.adopt(PeerSessions(), stranger)
    own = LiveSession(a.manager._load(a.peer.sessions[0]), steps=-1)
    with pytest.raises(CryptoError):
        batch.adopt(a.peer, own)


def test_peer_records_serialise_as_json_dumps_would() -> None:
    import json

    from tidings.crypto.sessions import SessionRecord

    def reference(peer: PeerSessions) -> str:
        raw = {
            "v": 1,
            "identity_key": peer.identity_key,
            "sessions": [{"id": s.session_id, "pickle": s.pickle} for s in peer.sessions],
            "last_reset_ms": peer.last_reset_ms,
        }
        return json.dumps(raw, separators=(",", ":"), ensure_ascii=False)

    a, _b = connected()
    samples = [
        a.peer,
        PeerSessions(),
        PeerSessions("k", [SessionRecord('i"d\\', "p\nx\x7fé"), SessionRecord("a", "b")], 7),
    ]
    for peer in samples:
        assert peer.to_json() == reference(peer)
        assert PeerSessions.from_json(peer.to_json()) == peer


def test_pickles_vodozemac_writes_need_no_json_escaping() -> None:
    """`to_json` splices a pickle fresh from vodozemac in unchecked: that holds only while
    vodozemac writes base64, and a record read back compares equal whatever it came from."""
    from tidings.crypto.sessions import _BASE64

    a, _b = connected()
    batch = a.manager.batch()
    batch.encrypt(a.peer, b"x")
    batch.close()
    for record in a.peer.sessions:
        assert record.from_vodozemac
        assert not record.pickle.encode("ascii").translate(None, _BASE64)
    again = PeerSessions.from_json(a.peer.to_json())
    assert not again.sessions[0].from_vodozemac and again == a.peer
    assert again.to_json() == a.peer.to_json()


def test_the_account_is_loaded_and_changed_only_by_a_new_inbound_session() -> None:
    """A manager given a loader unpickles the account only to open a session: decrypting on
    sessions it holds (normal messages, and pre-key messages of a session it already has)
    neither loads it nor changes it, so the receive path saves it only after a new one."""
    a, b = Party(), Party()
    a.start(b, b.publish_otk())
    loads: list[DeviceCrypto] = []

    def load() -> DeviceCrypto:
        loads.append(b.device)
        return b.device

    receiving = SessionManager(load, b.pickle_key)
    first, again = a.send("first"), a.send("again")  # both pre-key: A has not heard back
    assert receiving.decrypt(b.peer, a.device.identity_key, *first) == b"first"
    assert (len(loads), receiving.account_changed) == (1, True)  # a one-time key used up

    holding = SessionManager(load, b.pickle_key)
    assert holding.decrypt(b.peer, a.device.identity_key, *again) == b"again"
    reply = holding.encrypt(b.peer, b"reply")
    assert a.receive(b, reply) == "reply"
    normal = a.send("normal")
    assert normal[0] == 1
    assert holding.decrypt(b.peer, a.device.identity_key, *normal) == b"normal"
    assert (len(loads), holding.account_changed) == (1, False)
