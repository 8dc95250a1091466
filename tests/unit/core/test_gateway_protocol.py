"""The small stand-ins the gateway's websocket protocol uses for asyncio.Queue and Event."""

from __future__ import annotations

import asyncio

import pytest

from tidings.gateway.protocol import Inbox, WriteGate


async def test_the_inbox_hands_out_events_in_order_and_waits_when_empty() -> None:
    inbox = Inbox()
    inbox.put_nowait("connect")
    assert not inbox.empty()
    assert await inbox.get() == "connect"
    assert inbox.empty()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    assert not reader.done()
    inbox.put_nowait("one")
    inbox.put_nowait("two")
    assert await reader == "one"
    assert await inbox.get() == "two"


async def test_the_inbox_survives_a_cancelled_reader_and_refuses_a_second_one() -> None:
    inbox = Inbox()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        await inbox.get()
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    inbox.put_nowait("after")
    assert await inbox.get() == "after"


async def test_the_write_gate_holds_senders_while_paused_and_lets_them_all_go() -> None:
    gate = WriteGate()
    assert gate.is_set() and await gate.wait()
    gate.clear()
    assert not gate.is_set()
    senders = [asyncio.create_task(gate.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(s.done() for s in senders)
    senders[0].cancel()  # one sender gives up: the others still wait, then go
    await asyncio.sleep(0)
    assert not senders[1].done()
    gate.set()
    assert await asyncio.gather(*senders[1:]) == [True, True]
    assert gate.is_set()
