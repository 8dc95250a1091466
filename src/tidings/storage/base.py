"""The blob store interface and its key rules."""

from __future__ import annotations

import re
from typing import Protocol

# Keys are relative, slash-separated names of lowercase letters, digits, '.', '_' and '-'.
# No segment may be empty or start with '.', which rules out '..' and hidden files: a key can
# never name anything outside the store, whatever the implementation maps it to.
_SEGMENT = re.compile(r"[a-z0-9_-][a-z0-9._-]{0,127}")
MAX_KEY_LENGTH = 512


class InvalidBlobKey(ValueError):
    """A key that could escape the store or is not in the key alphabet."""


class BlobNotFound(LookupError):
    """No blob is stored under the key."""


def check_key(key: str) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidBlobKey("a blob key must be a non-empty string of at most 512 characters")
    for segment in key.split("/"):
        if not _SEGMENT.fullmatch(segment):
            raise InvalidBlobKey(f"invalid blob key {key!r}")
    return key


class BlobStore(Protocol):
    """Opaque bytes by key. Callers encrypt before `put`: a store never sees plaintext."""

    async def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing any blob there; readers see all or nothing."""
        ...

    async def get(self, key: str) -> bytes:
        """The blob under `key`, or BlobNotFound."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the blob under `key`; a missing blob is not an error."""
        ...

    async def exists(self, key: str) -> bool: ...
