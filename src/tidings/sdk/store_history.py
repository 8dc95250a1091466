"""A profile's event journal and message history, as `State` reads and writes them inside a
`ProfileStore` transaction (a part of `State` of its own, for the store module's size)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from typing import TYPE_CHECKING, Any

from tidings.kit import jsonutil
from tidings.sdk.events import StoredMessage

if TYPE_CHECKING:
    from tidings.sdk.store import ProfileStore

_MESSAGE_FIELDS = dataclasses.fields(StoredMessage)
# `jsonutil.dumps` (the same output) builds an encoder per call; history is written per message.
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


class HistoryRecords:
    """The journal and history part of `State`: its connection and store are `State`'s."""

    _db: sqlite3.Connection
    _store: ProfileStore

    # -- event journal ----------------------------------------------------------------------

    def journal(self, event: dict[str, Any]) -> None:
        """Record an event in the same transaction as the state change that produced it.

        A consumer that keeps its own cursor (the business platform, in its database) can then
        take every event exactly once, whatever crashes between our commit and its own.
        """
        if self._store.meta("journal") != "on":
            return
        cursor = self._db.execute("INSERT INTO journal (blob) VALUES (?)", (b"",))
        position = int(cursor.lastrowid or 0)
        blob = self._store.seal(f"journal/{position}", jsonutil.dumps(event).encode())
        self._db.execute("UPDATE journal SET blob = ? WHERE position = ?", (blob, position))

    def journal_after(self, position: int, limit: int = 100) -> list[tuple[int, dict[str, Any]]]:
        rows = self._db.execute(
            "SELECT position, blob FROM journal WHERE position > ? ORDER BY position LIMIT ?",
            (position, limit),
        ).fetchall()
        return [
            (pos, jsonutil.loads(self._store.unseal(f"journal/{pos}", blob))) for pos, blob in rows
        ]

    def journal_trim(self, up_to: int) -> None:
        self._db.execute("DELETE FROM journal WHERE position <= ?", (up_to,))

    # -- message history --------------------------------------------------------------------

    def put_message(self, message: StoredMessage) -> bytes:
        """Write a message of the history; returns the sealed row as written (see
        `message_blob`)."""
        name = f"message/{message.key}"
        # The fields as they are: `to_dict` (dataclasses.asdict) deep-copies the content only
        # for it to be serialised at once, which cost more than the rest of the send path.
        fields = {f.name: getattr(message, f.name) for f in _MESSAGE_FIELDS}
        blob = self._store.seal(name, _JSON.encode(fields).encode())
        self._db.execute(
            "INSERT INTO messages (key, msg_id, blob) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET blob = excluded.blob",
            (message.key, message.id, blob),
        )
        return blob

    def message_blob(self, key: str) -> bytes | None:
        """A message's row as stored, sealed: equal to what `put_message` returned, the
        message is still what was written then (every write seals under a fresh nonce)."""
        row = self._db.execute("SELECT blob FROM messages WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def message(self, key: str) -> StoredMessage | None:
        row = self._db.execute("SELECT blob FROM messages WHERE key = ?", (key,)).fetchone()
        return None if row is None else self._message(key, row[0])

    def messages_with_id(self, msg_id: str) -> list[StoredMessage]:
        rows = self._db.execute(
            "SELECT key, blob FROM messages WHERE msg_id = ? ORDER BY position", (msg_id,)
        )
        return [self._message(key, blob) for key, blob in rows.fetchall()]

    def messages(self, limit: int = 100) -> list[StoredMessage]:
        """The newest `limit` messages, oldest first."""
        rows = self._db.execute(
            "SELECT key, blob FROM messages ORDER BY position DESC LIMIT ?", (limit,)
        ).fetchall()
        return [self._message(key, blob) for key, blob in reversed(rows)]

    def delete_messages(self, keys: list[str]) -> None:
        self._db.executemany("DELETE FROM messages WHERE key = ?", [(key,) for key in keys])

    def _message(self, key: str, blob: bytes) -> StoredMessage:
        raw = jsonutil.loads(self._store.unseal(f"message/{key}", blob))
        return StoredMessage.from_dict(raw)
