"""The bus interface. Implementations: in-process (default) and Redis (scale-out)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[dict[str, Any]]: ...

    async def get(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next message, or None when `timeout` seconds pass without one."""
        ...

    async def add(self, *topics: str) -> None:
        """Also receive these topics (one node-wide subscription can follow many devices)."""
        ...

    async def discard(self, *topics: str) -> None:
        """Stop receiving these topics."""
        ...


class Bus(Protocol):
    async def publish(self, topic: str, message: dict[str, Any]) -> None: ...

    def subscribe(self, *topics: str) -> AbstractAsyncContextManager[Subscription]: ...

    async def close(self) -> None: ...
