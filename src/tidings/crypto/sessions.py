"""Sesame-style bookkeeping of Olm sessions per peer device, and replay de-duplication.

State lives in plain objects (`PeerSessions`, `SeenMessages`) that the SDK serialises, seals
and persists. Persist after every successful `encrypt` or `decrypt` and before sending or
acknowledging, or a crash replays ratchet state. A failed decrypt changes nothing, so there
is never anything to roll back.

The send path may persist less than a pickle (see `OpenSessions`): a count of the steps a
session took on its sending chain since its pickle. That is enough because such a step is
deterministic: once a session has encrypted since it last decrypted, its ratchet is active,
and every further encryption only advances the chain key by a fixed derivation until the next
decryption. `replay_steps` takes the same steps on the pickle, with a throw-away plaintext,
and arrives at the same state. The first encryption after a decryption is different (it
draws a new ratchet key at random), so a session whose chain state is not known to be active
is always pickled after it encrypts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import vodozemac

from tidings.crypto.device import DeviceCrypto
from tidings.crypto.encoding import b64, unb64
from tidings.crypto.errors import CryptoError, DecryptionFailed, DuplicateMessage
from tidings.kit import jsonutil

MAX_SESSIONS_PER_PEER = 5
# Steps a session may run ahead of its pickle before it is pickled again: what loading it
# after a restart replays at most (an encryption each, about 10-25 µs).
MAX_UNPICKLED_STEPS = 32
# Encrypted and thrown away by `replay_steps`: a chain step does not depend on the plaintext.
_REPLAY_PLAINTEXT = b""
RESET_INTERVAL_MS = 3_600_000
PRE_KEY = 0
NORMAL = 1


@dataclass
class SessionRecord:
    session_id: str
    pickle: str  # vodozemac pickle under the SessionManager's pickle key
    # True when `pickle` comes straight from `Session.pickle`, which writes base64: then
    # `PeerSessions.to_json` need not check it for characters to escape (0.6 µs for 2 KB).
    from_vodozemac: bool = field(default=False, compare=False, repr=False)

    @classmethod
    def of(cls, session: vodozemac.Session, pickle_key: bytes) -> SessionRecord:
        return cls(session.session_id, session.pickle(pickle_key), from_vodozemac=True)


@dataclass
class PeerSessions:
    """All sessions with ONE peer device, most recently used first.

    A peer device that shows up with a new identity key is a new device and needs a new
    `PeerSessions`; the manager refuses to mix identities in one record.
    """

    identity_key: str | None = None
    sessions: list[SessionRecord] = field(default_factory=list)
    last_reset_ms: int | None = None

    @property
    def active_session_id(self) -> str | None:
        return self.sessions[0].session_id if self.sessions else None

    @property
    def session_ids(self) -> list[str]:
        return [s.session_id for s in self.sessions]

    def _promote(self, record: SessionRecord) -> None:
        rest = [s for s in self.sessions if s.session_id != record.session_id]
        self.sessions = [record, *rest][:MAX_SESSIONS_PER_PEER]

    def to_json(self) -> str:
        # The send path writes this record for every device it encrypts to, and the pickles
        # are most of it (1.3 to 2 KB each): `json.dumps` escapes a string character by
        # character (about 10 µs for one pickle), so strings that need no escaping (base64,
        # as vodozemac writes pickles and ids) are spliced in as they are. The output is the
        # same JSON `json.dumps` would write.
        sessions = ",".join(
            f'{{"id":{_json_str(s.session_id)},"pickle":{_pickle_json(s)}}}' for s in self.sessions
        )
        identity = "null" if self.identity_key is None else _json_str(self.identity_key)
        reset = "null" if self.last_reset_ms is None else str(int(self.last_reset_ms))
        return (
            f'{{"v":1,"identity_key":{identity},"sessions":[{sessions}],"last_reset_ms":{reset}}}'
        )

    @classmethod
    def from_json(cls, text: str) -> PeerSessions:
        try:
            raw: Any = jsonutil.loads(text)
            if not isinstance(raw, dict) or raw.get("v") != 1:
                raise CryptoError("unknown peer session record version")
            identity_key = raw["identity_key"]
            last_reset = raw["last_reset_ms"]
            records = [SessionRecord(str(s["id"]), str(s["pickle"])) for s in raw["sessions"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise CryptoError("malformed peer session record") from exc
        if identity_key is not None and not isinstance(identity_key, str):
            raise CryptoError("malformed peer identity key")
        if last_reset is not None and not isinstance(last_reset, int):
            raise CryptoError("malformed reset timestamp")
        return cls(
            identity_key=identity_key,
            sessions=records[:MAX_SESSIONS_PER_PEER],
            last_reset_ms=last_reset,
        )


_BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


def _pickle_json(record: SessionRecord) -> str:
    return f'"{record.pickle}"' if record.from_vodozemac else _json_str(record.pickle)


def _json_str(text: str) -> str:
    """`text` as `json.dumps` writes it. Base64 needs no escaping, so it is only quoted."""
    if text.isascii() and not text.encode("ascii").translate(None, _BASE64):
        return f'"{text}"'
    return jsonutil.dumps(text)


class SessionManager:
    """Encrypts and decrypts for one own device, over `PeerSessions` records passed in."""

    def __init__(
        self, device: DeviceCrypto | Callable[[], DeviceCrypto], pickle_key: bytes
    ) -> None:
        """`device` may be a loader, called the first time the account is needed: only
        opening a session (outbound, or inbound from a pre-key message on a new one-time
        key) uses it, and unpickling an account costs about 1.3 ms (its one-time keys'
        public halves are derived again), more than decrypting a frame of messages."""
        if not isinstance(pickle_key, bytes) or len(pickle_key) != 32:
            raise CryptoError("pickle key must be 32 bytes")
        self._device: DeviceCrypto | None = None
        self._load_device: Callable[[], DeviceCrypto] | None = None
        if isinstance(device, DeviceCrypto):
            self._device = device
        else:
            self._load_device = device
        self._key = pickle_key
        # Set once an inbound session used up a one-time key: the account must be saved.
        self.account_changed = False

    @property
    def device(self) -> DeviceCrypto:
        if self._device is None:
            assert self._load_device is not None
            self._device = self._load_device()
        return self._device

    def _load(self, record: SessionRecord) -> vodozemac.Session:
        return _unpickle(record, self._key)

    def _record(self, session: vodozemac.Session) -> SessionRecord:
        return SessionRecord.of(session, self._key)

    @staticmethod
    def _check_identity(peer: PeerSessions, identity_key: str) -> None:
        if peer.identity_key is not None and peer.identity_key != identity_key:
            raise CryptoError("peer identity key changed; this is a new device")

    def has_session(self, peer: PeerSessions) -> bool:
        return bool(peer.sessions)

    def start_session(self, peer: PeerSessions, peer_identity_key: str, one_time_key: str) -> None:
        """Open an outbound session and make it active. Verify the key's signature first."""
        self._check_identity(peer, peer_identity_key)
        session = self.device.create_outbound_session(peer_identity_key, one_time_key)
        peer.identity_key = peer_identity_key
        peer._promote(self._record(session))

    def encrypt(self, peer: PeerSessions, plaintext: bytes) -> tuple[int, str]:
        """Encrypt with the active session; type 0 until the peer has answered on it."""
        if not peer.sessions:
            raise CryptoError("no session with this peer device")
        session = self._load(peer.sessions[0])
        msg_type, ciphertext = session.encrypt(plaintext).to_parts()
        peer.sessions[0] = self._record(session)
        return msg_type, b64(ciphertext)

    def batch(self) -> OpenSessions:
        """Encrypt many messages with each session unpickled once and pickled once (a batch
        of sends); `OpenSessions.close` writes the advanced sessions back to their peers."""
        return OpenSessions(self._key)

    def decrypt(
        self, peer: PeerSessions, peer_identity_key: str, msg_type: int, body_b64: str
    ) -> bytes:
        """Decrypt and make the session that worked the active one.

        A pre-key message that no held session matches creates an inbound session, which
        consumes a one-time key of the device account: persist the account afterwards too.
        """
        self._check_identity(peer, peer_identity_key)
        if msg_type not in (PRE_KEY, NORMAL):
            raise DecryptionFailed(f"unknown Olm message type {msg_type}")
        try:
            message = vodozemac.AnyOlmMessage.from_parts(msg_type, unb64(body_b64))
        except (CryptoError, ValueError) as exc:
            raise DecryptionFailed("malformed Olm message") from exc
        if msg_type == PRE_KEY:
            plaintext, session = self._decrypt_pre_key(peer, peer_identity_key, message)
        else:
            plaintext, session = self._decrypt_normal(peer, message)
        peer.identity_key = peer_identity_key
        peer._promote(self._record(session))
        return plaintext

    def _decrypt_pre_key(
        self, peer: PeerSessions, identity_key: str, message: vodozemac.AnyOlmMessage
    ) -> tuple[bytes, vodozemac.Session]:
        pre_key = message.to_pre_key()
        if pre_key is None:
            raise DecryptionFailed("not a pre-key message")
        # A held session that matches is the one this message belongs to. If it cannot decrypt,
        # the message was already read: creating a fresh inbound session would let a replayed
        # fallback-key message decrypt a second time.
        for record in peer.sessions:
            session = self._load(record)
            if session.session_matches(pre_key):
                try:
                    return session.decrypt(message), session
                except vodozemac.OlmDecryptionException as exc:
                    raise DuplicateMessage("pre-key message was already decrypted") from exc
        try:
            session, plaintext = self.device.create_inbound_session(identity_key, pre_key)
        except (CryptoError, ValueError) as exc:
            # Typically a one-time key we no longer hold: the sender's session is dead.
            raise DecryptionFailed(f"cannot create inbound session: {exc}", wedged=True) from exc
        self.account_changed = True
        return plaintext, session

    def _decrypt_normal(
        self, peer: PeerSessions, message: vodozemac.AnyOlmMessage
    ) -> tuple[bytes, vodozemac.Session]:
        for record in peer.sessions:
            session = self._load(record)
            try:
                return session.decrypt(message), session
            except vodozemac.OlmDecryptionException:
                continue
        raise DecryptionFailed("no session could decrypt the message", wedged=True)

    @staticmethod
    def may_reset(
        peer: PeerSessions, now_ms: int, min_interval_ms: int = RESET_INTERVAL_MS
    ) -> bool:
        """Whether a wedged-session reset towards this peer device is allowed now."""
        if peer.last_reset_ms is None:
            return True
        # abs(): a clock that jumped backwards must not block resets for the length of the jump.
        return abs(now_ms - peer.last_reset_ms) >= min_interval_ms

    @staticmethod
    def mark_reset(peer: PeerSessions, now_ms: int) -> None:
        peer.last_reset_ms = now_ms


class SeenMessages:
    """A bounded set of message ids, oldest forgotten first, in memory.

    Olm itself rejects duplicates within a session, but a pre-key message on the fallback key
    decrypts again in a fresh session, so the application must de-duplicate by id. The SDK's
    profile keeps its sets as rows (`tidings.sdk.seen.SeenIds`); this class's JSON is the
    sealed record earlier versions kept, which `tidings.sdk.seen` imports once.
    """

    def __init__(self, limit: int = 10_000) -> None:
        if limit < 1:
            raise CryptoError("limit must be positive")
        self.limit = limit
        self._ids: dict[str, None] = {}

    def __contains__(self, msg_id: object) -> bool:
        return msg_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def ids(self) -> list[str]:
        """The ids, oldest first."""
        return list(self._ids)

    def check_and_add(self, msg_id: str) -> bool:
        """True the first time an id is seen, False for a duplicate."""
        if msg_id in self._ids:
            return False
        self._ids[msg_id] = None
        while len(self._ids) > self.limit:
            del self._ids[next(iter(self._ids))]
        return True

    def to_json(self) -> str:
        return jsonutil.dumps({"v": 1, "limit": self.limit, "ids": list(self._ids)})

    @classmethod
    def from_json(cls, text: str) -> SeenMessages:
        try:
            raw: Any = jsonutil.loads(text)
            if not isinstance(raw, dict) or raw.get("v") != 1:
                raise CryptoError("unknown seen-messages record version")
            seen = cls(int(raw["limit"]))
            ids = raw["ids"]
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise CryptoError("malformed message ids")
        except (ValueError, KeyError, TypeError) as exc:
            raise CryptoError("malformed seen-messages record") from exc
        for msg_id in ids:
            seen.check_and_add(msg_id)
        return seen


class LiveSession(NamedTuple):
    """A peer's active session kept unpickled, `steps` encryptions on its sending chain ahead
    of the pickle in the peer's record (0: the record holds exactly this session). Only
    `OpenSessions.close` makes one: its session has encrypted since it last decrypted. (A
    tuple: the send path makes one per device per batch, at a third of a frozen dataclass's
    cost.)"""

    session: vodozemac.Session
    steps: int = 0
    # The session's id when its maker knew it without asking vodozemac (which hashes the
    # session's keys for it): `OpenSessions.adopt` checks it against the record's.
    session_id: str | None = None


class _Open:
    __slots__ = ("peer", "session", "session_id", "steps")

    def __init__(
        self, peer: PeerSessions, session: vodozemac.Session, session_id: str, steps: int | None
    ):
        self.peer = peer
        self.session = session
        self.session_id = session_id
        # Steps ahead of peer.sessions[0]; None while the chain state is not known to be
        # active (unpickled here: its next encryption may draw a new ratchet key).
        self.steps = steps


class OpenSessions:
    """Active sessions held unpickled across the encryptions of one batch (see
    `SessionManager.batch`). Until `close`, the peers' records are stale.

    A caller that kept a peer's active session unpickled from an earlier batch hands it in with
    `adopt` and skips the unpickling (about twice the cost of an encryption). Such a session
    is not pickled again at `close` while it is at most `max_steps` ahead of its record: the
    caller persists the step count instead (a pickle costs about half an encryption)."""

    def __init__(self, pickle_key: bytes, max_steps: int = MAX_UNPICKLED_STEPS) -> None:
        if not isinstance(pickle_key, bytes) or len(pickle_key) != 32:
            raise CryptoError("pickle key must be 32 bytes")
        self._key = pickle_key
        self._max_steps = max_steps
        self._live: dict[int, _Open] = {}

    def adopt(self, peer: PeerSessions, live: LiveSession) -> None:
        """Use `live.session` as `peer`'s active session. It must be exactly what
        `peer.sessions[0]` holds pickled, advanced by `live.steps`: one step behind or ahead
        would reuse a message key or break the chain."""
        session_id = live.session_id or live.session.session_id
        if not peer.sessions or peer.sessions[0].session_id != session_id:
            raise CryptoError("the session handed in is not the peer's active session")
        if live.steps < 0:
            raise CryptoError("a session cannot be behind its record")
        self._live[id(peer)] = _Open(peer, live.session, session_id, live.steps)

    def encrypt(self, peer: PeerSessions, plaintext: bytes) -> tuple[int, str]:
        entry = self._live.get(id(peer))
        if entry is None:
            if not peer.sessions:
                raise CryptoError("no session with this peer device")
            record = peer.sessions[0]
            entry = _Open(peer, _unpickle(record, self._key), record.session_id, None)
            self._live[id(peer)] = entry
        msg_type, ciphertext = entry.session.encrypt(plaintext).to_parts()
        if entry.steps is not None:
            entry.steps += 1
        return msg_type, b64(ciphertext)

    def close(self) -> dict[int, LiveSession]:
        """Each session by `id(peer)`, for the caller to persist and keep: pickled back into
        its peer's record (steps 0) when it was unpickled here or ran `max_steps` ahead;
        otherwise the record is left as it was and the session is that many steps ahead."""
        kept = {}
        for key, entry in self._live.items():
            steps = entry.steps
            if steps is None or steps > self._max_steps:
                entry.peer.sessions[0] = SessionRecord.of(entry.session, self._key)
                steps = 0
            kept[key] = LiveSession(entry.session, steps, entry.session_id)
        self._live.clear()
        return kept


def replay_steps(record: SessionRecord, steps: int, pickle_key: bytes) -> SessionRecord:
    """The record after `steps` more steps of its session's sending chain: the state a
    `LiveSession` that many steps ahead of it had (see the module's docstring for why the
    same steps lead to the same state)."""
    if steps < 0:
        raise CryptoError("a session cannot be behind its record")
    if steps == 0:
        return record
    session = _unpickle(record, pickle_key)
    for _ in range(steps):
        session.encrypt(_REPLAY_PLAINTEXT)
    return SessionRecord.of(session, pickle_key)


def _unpickle(record: SessionRecord, pickle_key: bytes) -> vodozemac.Session:
    try:
        return vodozemac.Session.from_pickle(record.pickle, pickle_key)
    except ValueError as exc:
        raise CryptoError("cannot unpickle a session (wrong pickle key?)") from exc
