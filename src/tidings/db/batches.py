"""One unit of work for the requests of one kind that arrive together.

A small request whose work is a couple of reads and an insert (a device's receipt) spends most
of its time on the unit of work around it: a session, a connection, BEGIN and COMMIT, then the
wait for the log to reach the disk. Under load such requests arrive many per turn of the event
loop. `SharedUnits` gathers the items submitted during one turn and runs them in one unit of
work, so they share that cost; each caller still gets its own answer, and only once the unit
committed (and, on SQLite, its log was synced): what a caller is told was done is durable.

The unit is the task's, not the callers' (one unit of work per request or task): `work` runs
every item and answers each with its result or with the `AppError` that refused it. An item it
refuses must leave nothing behind, so `work` checks an item before writing anything for it.
Anything else that goes wrong fails the whole unit, and every caller of it gets that error, as
each would have got it from a unit of its own.

Light load costs one turn of the loop: an item alone is run in the next turn, in a unit of its
own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from tidings.db.uow import Database, UnitOfWork
from tidings.errors import AppError

Item = TypeVar("Item")
Result = TypeVar("Result")
Work = Callable[[UnitOfWork, Sequence[Item]], Awaitable[list[Result | AppError]]]


class SharedUnits(Generic[Item, Result]):
    def __init__(self, database: Database, work: Work[Item, Result], limit: int = 200) -> None:
        self._database = database
        self._work = work
        self._limit = limit
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._scheduled = False
        self._running: set[asyncio.Task[None]] = set()

    async def run(self, item: Item) -> Result:
        """`item`'s result, once the unit it ran in committed; or the error that refused it."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Result] = loop.create_future()
        self._waiting.append((item, answer))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._start)
        return await answer

    def _start(self) -> None:
        self._scheduled = False
        waiting, self._waiting = self._waiting, []
        for start in range(0, len(waiting), self._limit):
            task = asyncio.create_task(self._run(waiting[start : start + self._limit]))
            self._running.add(task)  # held: the loop keeps only weak references to tasks
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            async with self._database.unit_of_work() as uow:
                results = await self._work(uow, [item for item, _answer in batch])
        except asyncio.CancelledError:
            for _item, answer in batch:
                answer.cancel()
            raise
        except Exception as exc:
            for _item, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
            return
        for (_item, answer), result in zip(batch, results, strict=True):
            if answer.done():  # its caller was cancelled meanwhile
                continue
            if isinstance(result, AppError):
                answer.set_exception(result)
            else:
                answer.set_result(result)
