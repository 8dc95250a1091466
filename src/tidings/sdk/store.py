"""The sealed local key store of one device profile.

A profile is a folder (for example ~/.tidings/alice) holding:

    master.key   32 random bytes, mode 0600: the key every other secret is sealed under
    state.db     SQLite (WAL, synchronous=FULL)

Every secret record (the Olm account pickle, the account private key, each peer's sessions,
pinned keys, the device token and the message history) is an AES-GCM blob whose associated
data names the record, so a blob moved to another record fails to open. The ids a device has
seen are keyed hashes (`tidings.sdk.seen`). Only non-secret facts (server URL, phone, device
id, primary flag) are stored in the clear.

Every change happens inside `ProfileStore.transaction()`, which takes SQLite's write lock
(BEGIN IMMEDIATE), so a `listen` and a `send` running in two processes on one profile never
overwrite each other's ratchet state. Callers must not await inside a transaction: they load,
mutate and write back in one synchronous step.

The send path keeps the active session of the peers it encrypted to unpickled between
transactions (`State.sending_peers`, `State.save_peers`): unpickling costs about twice an
encryption. A kept session is only ever used while the stored record is byte for byte the one
written with it (every write seals under a fresh nonce, so any other writer, in this process
or another, changes the bytes) and its step count is the one stored, and it is kept only once
the transaction that wrote it has committed: a rolled-back transaction drops it, so memory
never runs ahead of the disk.

A kept session that encrypts again is usually not pickled: the transaction writes how many
steps its sending chain may be ahead of the record's pickle (`ratchet_steps`, see
`tidings.crypto.sessions`), and every read of the record for use replays them. The count is
a reservation, not the exact position: when a session steps past the stored count, the
transaction stores more than it needs, as many steps again as the session took since its
pickle, up to `STEPS_RESERVED` - 1 more (and never past `MAX_UNPICKLED_STEPS`). A session
that sends one message a batch without hearing back (a broadcast) writes its count at steps
1, 2, 4, 8, 16, 24 and 32 instead of at every one; a session in a conversation, re-read and
pickled after each reply, keeps an exact count, so reading it replays no step for nothing.
The stored count is never below the steps taken, which is what keeps message keys from being
used twice; a reader replays to the reservation and so starts a few message indices further
on, which the peer's ratchet takes as messages it never got (it keeps their keys, 7 at
most). The count is stored in the clear: it is at most
`MAX_UNPICKLED_STEPS`, says no more than the message history's row count does, and lowering
it would be a rollback of the record, which the sealing of single records does not prevent
either (the whole file is the unit of trust).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tidings.crypto import (
    MAX_UNPICKLED_STEPS,
    AccountKey,
    DeviceCrypto,
    LiveSession,
    PeerSessions,
    Sealer,
    SealError,
    new_master_key,
    replay_steps,
)
from tidings.kit import jsonutil
from tidings.sdk import errors
from tidings.sdk.errors import SdkError
from tidings.sdk.seen import SCHEMA as SEEN_SCHEMA
from tidings.sdk.seen import SeenIds, import_sealed_set
from tidings.sdk.store_history import HistoryRecords
from tidings.sdk.trust import ContactTrust

MASTER_KEY_FILE = "master.key"
STATE_FILE = "state.db"
_AAD_PREFIX = b"tidings-sdk/v1/"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (name TEXT PRIMARY KEY, blob BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    msg_id TEXT NOT NULL,
    blob BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_msg_id ON messages (msg_id);
CREATE TABLE IF NOT EXISTS ratchet_steps (
    name TEXT PRIMARY KEY,
    steps INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS journal (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    blob BLOB NOT NULL
);
"""

_UPSERT_RECORD = (
    "INSERT INTO records (name, blob) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET blob = excluded.blob"
)
_UPSERT_STEPS = (
    "INSERT INTO ratchet_steps (name, steps) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET steps = excluded.steps"
)
_RESET_STEPS = "DELETE FROM ratchet_steps WHERE name = ?"

# Seen-id sets: envelopes already processed (so a redelivery after a crash before the ack is
# acked without touching the ratchet) and message ids already shown (replays, fallback keys).
SEEN_ENVELOPES = "seen/envelopes"
SEEN_MESSAGES = "seen/messages"
# Receipts (delivered, read) queued in the transaction that produced them, posted after.
RECEIPT_OUTBOX = "outbox/receipts"

# At most this many steps, less one, stored ahead of a kept session's position when it steps
# past its stored count (see the module's docstring): each costs a reader one encryption
# (10-25 µs) and the peer one kept key, if the session never gets that far.
STEPS_RESERVED = 8

# Peers whose active session the send path keeps unpickled (a few KB each). A business's API
# device serves many customers; the ones it is talking to now are the ones that pay off.
LIVE_SESSIONS = 4096


class _LivePeer:
    __slots__ = ("blob", "live", "peer", "stored", "version")

    def __init__(
        self,
        blob: bytes,
        peer: PeerSessions,
        live: LiveSession,
        stored: int,
        version: int | None,
    ) -> None:
        self.blob = blob  # the stored record, sealed, exactly as written with `session`
        self.peer = peer
        self.live = live  # peer.sessions[0], unpickled, with its steps ahead of the pickle
        self.stored = stored  # the steps stored in ratchet_steps: at least live.steps
        # The database's `data_version` when the record and steps were last known to be
        # these: while it stands, no other connection has written anything, so neither needs
        # reading.
        self.version = version


def _write_master_key(path: Path) -> bytes:
    key = new_master_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
        handle.flush()
        os.fsync(handle.fileno())
    return key


class ProfileStore:
    def __init__(self, folder: Path, master_key: bytes, live_sessions: int = LIVE_SESSIONS) -> None:
        self.folder = folder
        self._sealer = Sealer(master_key)
        self.account_pickle_key = self._sealer.pickle_key("account")
        self.session_pickle_key = self._sealer.pickle_key("sessions")
        # Autocommit mode: transactions are opened explicitly with BEGIN IMMEDIATE.
        self._db = sqlite3.connect(
            folder / STATE_FILE, isolation_level=None, timeout=30, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA + SEEN_SCHEMA)
        self.seen_key = self._sealer.hash_key("seen")
        # Transactions committed through this handle: each is an fsync, so the send path's
        # cost shows in this count (tests and benchmarks read it).
        self.commits = 0
        self._live: OrderedDict[str, _LivePeer] = OrderedDict()
        self._live_limit = live_sessions
        # Record names by (phone, device id): the send path names every device of a batch
        # three times (checked, read, written), and a lookup costs less than formatting.
        self._names: dict[tuple[str, int], str] = {}
        self._import_sealed_seen_sets()

    # -- opening ----------------------------------------------------------------------------

    @staticmethod
    def exists(folder: Path) -> bool:
        return (folder / MASTER_KEY_FILE).exists()

    @classmethod
    def create(cls, folder: Path) -> ProfileStore:
        """A new, empty profile. An unfinished one (registration never completed) is replaced;
        a registered one is refused so nobody overwrites their keys by accident."""
        folder = folder.expanduser()
        if cls.exists(folder):
            existing = cls.open(folder)
            status = existing.meta("status")
            existing.close()
            if status == "active":
                raise SdkError(
                    errors.PROFILE_EXISTS,
                    f"{folder} already holds a registered device; choose another --profile",
                )
            for name in (MASTER_KEY_FILE, STATE_FILE, STATE_FILE + "-wal", STATE_FILE + "-shm"):
                (folder / name).unlink(missing_ok=True)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(folder, _write_master_key(folder / MASTER_KEY_FILE))

    @classmethod
    def open(cls, folder: Path) -> ProfileStore:
        folder = folder.expanduser()
        try:
            master_key = (folder / MASTER_KEY_FILE).read_bytes()
        except FileNotFoundError:
            raise SdkError(
                errors.NOT_REGISTERED,
                f"no device profile at {folder}: run `tidings register` or `tidings link join`",
            ) from None
        return cls(folder, master_key)

    def close(self) -> None:
        self._db.close()

    def _import_sealed_seen_sets(self) -> None:
        """Seen sets an earlier version kept as sealed records move into their table once."""
        names = (SEEN_ENVELOPES, SEEN_MESSAGES)
        if not self._db.execute("SELECT 1 FROM records WHERE name IN (?, ?)", names).fetchone():
            return
        with self.transaction() as state:
            for name in names:
                data = state.get(name)
                if data is not None:
                    import_sealed_set(self._db, name, self.seen_key, data.decode())
                    state.delete(name)

    # -- transactions -----------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, *, synced: bool = True) -> Iterator[State]:
        """One write transaction. `synced=False` commits without waiting for the disk: for
        changes whose loss to a power cut only repeats harmless work (receipts the server
        answered, sent again); a process crash loses nothing (the log is in the file), and
        the next synced commit takes them to the disk with it."""
        if not synced:  # SQLite takes the setting only outside a transaction
            self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            self._db.execute("BEGIN IMMEDIATE")
            state = State(self._db, self)
            try:
                yield state
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            # Read before the commit, while nobody else can write: our own commit leaves
            # data_version as it is, so the value still vouches for what we keep.
            version = state.data_version() if state._kept else None
            self._db.execute("COMMIT")
        finally:
            if not synced:
                self._db.execute("PRAGMA synchronous=FULL")
        self.commits += 1
        for name, live in state._kept.items():
            live.version = version
            # At the end as the most recently used: `sending_peers` took it out, and a write
            # of its record through this connection dropped it (`_forget_kept`).
            self._live[name] = live
        while len(self._live) > self._live_limit:
            self._live.popitem(last=False)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[State]:
        """A read-only view of one consistent state: unlike `transaction` it neither waits for
        nor takes the write lock, and has nothing to commit (the send path checks its sessions
        this way before every batch). A write inside fails."""
        self._db.execute("PRAGMA query_only = ON")
        try:
            self._db.execute("BEGIN DEFERRED")
            try:
                yield State(self._db, self)
            finally:
                self._db.execute("ROLLBACK")
        finally:
            self._db.execute("PRAGMA query_only = OFF")

    def meta(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def seal(self, name: str, data: bytes) -> bytes:
        return self._sealer.seal(data, _AAD_PREFIX + name.encode())

    def unseal(self, name: str, blob: bytes) -> bytes:
        try:
            return self._sealer.open(blob, _AAD_PREFIX + name.encode())
        except SealError as exc:
            raise SdkError(
                errors.PROTOCOL_ERROR, f"local record {name!r} is damaged or was tampered with"
            ) from exc


class State(HistoryRecords):
    """Typed access to the records, valid inside one `ProfileStore.transaction()` (the
    journal and the message history: `HistoryRecords`)."""

    def __init__(self, db: sqlite3.Connection, store: ProfileStore) -> None:
        self._db = db
        self._store = store
        # Sessions to keep unpickled once this transaction commits, by record name.
        self._kept: dict[str, _LivePeer] = {}
        # Kept sessions `sending_peers` handed out, by record name: the records they were
        # read with, which a step count written for them applies to.
        self._taken: dict[str, _LivePeer] = {}
        self._data_version: int | None = None  # read on first use, see `_vouching_version`

    def _vouching_version(self, any_kept: bool) -> int | None:
        """The version a kept session must carry for its record and steps to be certainly
        still the stored ones without reading them (None: nothing kept, nothing read). While
        it matches, no other connection (in this process or another) has written to the
        database since they were: SQLite's `data_version` moves with every commit of another
        connection, and this one drops its kept sessions of any record it writes otherwise.
        Inside a transaction nobody else can write; in a snapshot, what it reads is as of
        its start. Callers compare per record (`live.version == version`, with None never
        matching), without a call per record."""
        return self.data_version() if any_kept else None

    def data_version(self) -> int:
        if self._data_version is None:
            row = self._db.execute("PRAGMA data_version").fetchone()
            self._data_version = int(row[0])
        return self._data_version

    # -- clear metadata ---------------------------------------------------------------------

    def meta(self, name: str) -> str | None:
        return self._store.meta(name)

    def set_meta(self, name: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    # -- sealed records ---------------------------------------------------------------------

    def get(self, name: str) -> bytes | None:
        row = self._db.execute("SELECT blob FROM records WHERE name = ?", (name,)).fetchone()
        return None if row is None else self._store.unseal(name, row[0])

    def put(self, name: str, data: bytes) -> None:
        self._put_blob(name, self._store.seal(name, data))

    def _put_blob(self, name: str, blob: bytes) -> None:
        self._forget_kept(name)
        self._db.execute(_UPSERT_RECORD, (name, blob))

    def delete(self, name: str) -> None:
        self._forget_kept(name)
        self._db.execute("DELETE FROM records WHERE name = ?", (name,))

    def _forget_kept(self, name: str) -> None:
        """Drop the session kept for a record this connection is about to write otherwise:
        our own writes leave data_version as it is, so `_vouching_version` relies on this."""
        self._store._live.pop(name, None)

    def get_json(self, name: str) -> Any:
        data = self.get(name)
        return None if data is None else jsonutil.loads(data)

    def put_json(self, name: str, value: Any) -> None:
        self.put(name, jsonutil.dumps(value).encode())

    # -- device secrets ---------------------------------------------------------------------

    def token(self) -> str:
        data = self.get("token")
        if data is None:
            raise SdkError(errors.NOT_REGISTERED, "this profile has no device token yet")
        return data.decode()

    def set_token(self, token: str) -> None:
        self.put("token", token.encode())

    def account(self) -> DeviceCrypto:
        data = self.get("account")
        if data is None:
            raise SdkError(errors.NOT_REGISTERED, "this profile has no device keys")
        return DeviceCrypto.from_pickle(data.decode(), self._store.account_pickle_key)

    def save_account(self, device: DeviceCrypto) -> None:
        self.put("account", device.pickle(self._store.account_pickle_key).encode())

    def account_key(self) -> AccountKey | None:
        data = self.get("account_key")
        return None if data is None else AccountKey.from_private_bytes(data)

    def save_account_key(self, key: AccountKey) -> None:
        self.put("account_key", key.private_bytes())

    # -- sessions, trust, de-duplication ----------------------------------------------------

    @staticmethod
    def _peer_name(phone: str, device_id: int) -> str:
        return f"peer/{phone}/{device_id}"

    def peer(self, phone: str, device_id: int) -> PeerSessions:
        """The peer's sessions as they stand, the active one advanced by its stored steps."""
        name = self._peer_name(phone, device_id)
        stored = self._stored_blobs([name]).get(name)
        return PeerSessions() if stored is None else self._read_peer(name, *stored)

    def _read_peer(self, name: str, blob: bytes, steps: int) -> PeerSessions:
        peer = PeerSessions.from_json(self._store.unseal(name, blob).decode())
        if steps and peer.sessions:
            peer.sessions[0] = replay_steps(peer.sessions[0], steps, self._store.session_pickle_key)
        return peer

    def session_identities(self, peers: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
        """The identity key of each peer device we hold sessions with (absent: no session),
        read in one statement per 500; a kept record is not parsed again."""
        names = self._peer_names(peers)
        found: dict[tuple[str, int], str] = {}
        unread: list[str] = []
        kept = self._store._live
        version = self._vouching_version(bool(kept))
        for name, key in names.items():
            live = kept.get(name)
            if live is not None and version is not None and live.version == version:
                if live.peer.sessions and live.peer.identity_key is not None:
                    found[key] = live.peer.identity_key
            else:
                unread.append(name)
        for name, (blob, _steps) in self._stored_blobs(unread).items():
            live = self._store._live.get(name)
            if live is not None and live.blob == blob:
                peer = live.peer
            else:  # only the identity is read: the steps change no identity
                peer = PeerSessions.from_json(self._store.unseal(name, blob).decode())
            if peer.sessions and peer.identity_key is not None:
                found[names[name]] = peer.identity_key
        return found

    def _peer_names(self, peers: list[tuple[str, int]]) -> dict[str, tuple[str, int]]:
        known = self._store._names
        return {known.get(key) or self._name_of(key): key for key in peers}

    def _name_of(self, key: tuple[str, int]) -> str:
        """The record name of a peer not in the store's names yet (callers look there first:
        one lookup per device instead of a call), remembered, the names kept bounded."""
        known = self._store._names
        if len(known) >= 4 * self._store._live_limit:
            known.clear()
        name = known[key] = self._peer_name(*key)
        return name

    def _stored_blobs(self, names: list[str]) -> dict[str, tuple[bytes, int]]:
        """The sealed records of `names` that exist, with their sessions' stored steps, in
        one statement per 500 names."""
        stored: dict[str, tuple[bytes, int]] = {}
        for start in range(0, len(names), 500):
            chunk = names[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                "SELECT records.name, blob, coalesce(steps, 0) FROM records"
                " LEFT JOIN ratchet_steps ON ratchet_steps.name = records.name"
                f" WHERE records.name IN ({marks})",
                chunk,
            )
            stored.update((name, (blob, steps)) for name, blob, steps in rows)
        return stored

    def sending_peers(
        self, peers: list[tuple[str, int]]
    ) -> dict[tuple[str, int], tuple[PeerSessions, LiveSession | None]]:
        """Each peer's sessions for sending, read in one statement per 500, with its active
        session still unpickled when an earlier send kept it and the stored record and steps
        are still the ones written with it."""
        names = self._peer_names(peers)
        cache = self._store._live
        version = self._vouching_version(bool(cache))
        found: dict[tuple[str, int], tuple[PeerSessions, LiveSession | None]] = {}
        unread: dict[str, _LivePeer | None] = {}
        for name, key in names.items():
            # Taken out of the cache: a kept session comes back only with the commit of the
            # transaction that writes its next state.
            live = cache.pop(name, None)
            if live is not None and version is not None and live.version == version:
                self._taken[name] = live
                found[key] = (live.peer, live.live)
            else:
                unread[name] = live
        stored = self._stored_blobs(list(unread)) if unread else {}
        for name, live in unread.items():
            key = names[name]
            if name not in stored:
                found[key] = (PeerSessions(), None)
                continue
            blob, steps = stored[name]
            if live is None or live.blob != blob or live.stored != steps:
                found[key] = (self._read_peer(name, blob, steps), None)
                continue
            self._taken[name] = live
            found[key] = (live.peer, live.live)
        return found

    def save_peer(
        self,
        phone: str,
        device_id: int,
        peer: PeerSessions,
        live: LiveSession | None = None,
    ) -> None:
        """Write the peer's sessions. `live`, the active session unpickled in exactly the state
        just written, is kept for the next send once this transaction commits."""
        self.save_peers([(phone, device_id, peer, live)])

    def save_peers(self, peers: list[tuple[str, int, PeerSessions, LiveSession | None]]) -> None:
        """`save_peer` for each (phone, device id, sessions, live session), in one statement
        each (the send path writes every device of a batch). A live session steps ahead of
        the record `sending_peers` handed it out with leaves that record as it is, and writes
        its steps only when they pass the count stored (see the module's docstring)."""
        records = []
        advanced = []
        known = self._store._names
        for phone, device_id, peer, live in peers:
            key = (phone, device_id)
            name = known.get(key) or self._name_of(key)
            taken = self._taken.get(name)
            if live is not None and live.steps:
                if taken is None or taken.peer is not peer:
                    raise ValueError("a session ahead of its record needs the record it came with")
                if live.steps > taken.stored:
                    extra = min(live.steps, STEPS_RESERVED) - 1
                    reserved = max(min(live.steps + extra, MAX_UNPICKLED_STEPS), live.steps)
                    advanced.append((name, reserved))
                    taken.stored = reserved
                # Out of the cache since `sending_peers` took it: changed in place, it is
                # kept again only by the commit (a rollback drops it, stored count and all).
                taken.live = live
                taken.version = None
                self._kept[name] = taken
                continue
            if live is None and taken is not None and taken.peer is peer and taken.live.steps:
                # Its record's active session is behind the kept one: written without it,
                # the next send would use message keys again.
                raise ValueError("a peer handed out with a session ahead needs that session")
            blob = self._store.seal(name, peer.to_json().encode())
            records.append((name, blob))
            self._forget_kept(name)
            if live is not None:
                if not peer.sessions or peer.sessions[0].session_id != live.session.session_id:
                    raise ValueError("the live session is not the peer's active session")
                self._kept[name] = _LivePeer(blob, peer, live, 0, None)
            else:
                self._kept.pop(name, None)
        if records:
            self._db.executemany(_UPSERT_RECORD, records)
            # A written record holds its sessions as they are: no steps ahead of it.
            self._db.executemany(_RESET_STEPS, [(name,) for name, _blob in records])
        if advanced:
            self._db.executemany(_UPSERT_STEPS, advanced)

    def delete_peer(self, phone: str, device_id: int) -> None:
        name = self._peer_name(phone, device_id)
        self.delete(name)
        self._db.execute(_RESET_STEPS, (name,))
        self._kept.pop(name, None)

    def trust(self, phone: str) -> ContactTrust | None:
        data = self.get(f"trust/{phone}")
        return None if data is None else ContactTrust.from_json(data.decode())

    def save_trust(self, phone: str, trust: ContactTrust) -> None:
        self.put(f"trust/{phone}", trust.to_json().encode())

    def seen(self, name: str) -> SeenIds:
        """The seen-id set `name`; its additions are written at once, in this transaction."""
        return SeenIds(self._db, name, self._store.seen_key)

    def append(self, name: str, item: Any) -> None:
        """Append to a small sealed list (pending receipts, notices)."""
        items = self.get_json(name) or []
        items.append(item)
        self.put_json(name, items)
