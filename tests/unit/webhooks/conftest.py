"""The webhook poster's tests run on asyncio's loop and on uvloop (what `tidings serve` runs
on); the other tests here on asyncio's loop only."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    if item.path.name == "test_webhooks_poster.py":
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvicorn[standard] brings it where it builds
            return factories
        factories["uvloop"] = uvloop.new_event_loop
    return factories
