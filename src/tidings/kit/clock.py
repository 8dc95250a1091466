"""Time comes from an injected clock so tests can move it without sleeping."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that moves only when told to; for tests and simulations."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        self._now = self._now + (delta or timedelta(**kwargs))
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when


def to_millis(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def monotonic() -> float:
    """Monotonic seconds, for measuring durations only (never for business time)."""
    return time.monotonic()


def as_utc(when: datetime) -> datetime:
    """`when` in UTC. Databases hand back naive datetimes (SQLite), which hold UTC; an aware
    one in another zone is converted (SQLite keeps only the wall-clock time it is given)."""
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when if when.tzinfo is UTC else when.astimezone(UTC)
