"""Seen-id sets of a profile, kept as rows: one row per id, written when the id is added.

A device checks every envelope it receives against the envelopes it has processed (so a
redelivery after a crash before the ack is acknowledged without touching the ratchet) and
every message against the messages it has shown (replays on the fallback key). The sets used
to be one sealed record each, read and rewritten whole by every transaction that touched
them: with the set at its bound of 10,000 ids that cost 4.7 ms of CPU per transaction
(unseal, parse, rebuild, serialise, seal ~500 KB), paid by a business's API device for every
page of receipts it synced and by a customer's device twice per frame. As rows, a check is
an index seek and an add one insert.

An id is stored as a keyed hash, not in the clear: envelope ids name their sender, and the
profile keeps who talked to whom sealed. The key is derived from the profile's master key.
The bound is kept loosely: once in `_EVICT_EVERY` additions (to any set) every set is trimmed
back to its newest `limit` ids, so a set holds at most `limit + _EVICT_EVERY - 1`.
"""

from __future__ import annotations

import hashlib
import sqlite3

from tidings.crypto import SeenMessages

SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    digest BLOB NOT NULL,
    UNIQUE (kind, digest)
);
CREATE INDEX IF NOT EXISTS seen_by_kind ON seen (kind, position);
"""

SEEN_LIMIT = 10_000
_EVICT_EVERY = 256
_DIGEST_BYTES = 16

_ADD = "INSERT OR IGNORE INTO seen (kind, digest) VALUES (?, ?)"
_HAS = "SELECT 1 FROM seen WHERE kind = ? AND digest = ?"
_KINDS = "SELECT DISTINCT kind FROM seen"
# Every id of the set older than its `limit` newest (the OFFSET row is the oldest kept).
_EVICT = (
    "DELETE FROM seen WHERE kind = ?1 AND position < ("
    " SELECT position FROM seen WHERE kind = ?1 ORDER BY position DESC LIMIT 1 OFFSET ?2)"
)


class SeenIds:
    """One named set, valid inside the store transaction whose connection it was given."""

    __slots__ = ("_db", "_key", "_kind", "_limit")

    def __init__(
        self, db: sqlite3.Connection, kind: str, key: bytes, limit: int = SEEN_LIMIT
    ) -> None:
        self._db = db
        self._kind = kind
        self._key = key
        self._limit = limit

    def _digest(self, item_id: str) -> bytes:
        return hashlib.blake2b(item_id.encode(), key=self._key, digest_size=_DIGEST_BYTES).digest()

    def __contains__(self, item_id: object) -> bool:
        if not isinstance(item_id, str):
            return False
        return self._db.execute(_HAS, (self._kind, self._digest(item_id))).fetchone() is not None

    def check_and_add(self, item_id: str) -> bool:
        """True the first time an id is seen (and now recorded), False for a duplicate."""
        cursor = self._db.execute(_ADD, (self._kind, self._digest(item_id)))
        if cursor.rowcount != 1:
            return False
        if cursor.lastrowid is not None and cursor.lastrowid % _EVICT_EVERY == 0:
            # Every set, not only this one: positions are shared, so sets filled in turn (an
            # envelope's id, then its message's) would leave one set never trimmed.
            for (kind,) in self._db.execute(_KINDS).fetchall():
                self._db.execute(_EVICT, (kind, self._limit - 1))
        return True


def import_sealed_set(db: sqlite3.Connection, kind: str, key: bytes, record_json: str) -> None:
    """Move a set from its former sealed record (`SeenMessages` JSON) into rows, oldest
    first, so a profile written by an earlier version keeps recognising what it saw."""
    seen = SeenIds(db, kind, key)
    for item_id in SeenMessages.from_json(record_json).ids():
        seen.check_and_add(item_id)
