"""SharedUnits: items submitted together run in one unit of work; each caller gets its own
answer once that unit committed; a refused item writes nothing; a failed unit fails them all.
On both stores, against real databases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy import text

from tidings.db.batches import SharedUnits
from tidings.db.engine import make_engine
from tidings.db.uow import Database, UnitOfWork
from tidings.errors import AppError, NotFound


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    read = make_engine(database_url, read_only=True) if database_url.startswith("sqlite") else None
    opened = Database(make_engine(database_url), read)
    async with opened.unit_of_work() as uow:
        await uow.session.execute(text("CREATE TABLE shared_rows (n INTEGER PRIMARY KEY)"))
    yield opened
    async with opened.unit_of_work() as uow:
        await uow.session.execute(text("DROP TABLE shared_rows"))
    await opened.dispose()


class Inserter:
    """Inserts each item's number; refuses negative ones; counts the units it ran in."""

    def __init__(self) -> None:
        self.units: list[list[int]] = []
        self.fail_next_unit = False

    async def work(self, uow: UnitOfWork, items: Sequence[int]) -> list[str | AppError]:
        self.units.append(list(items))
        answers: list[str | AppError] = []
        for n in items:
            if n < 0:
                answers.append(NotFound(f"no such thing as {n}"))
                continue
            await uow.session.execute(text("INSERT INTO shared_rows (n) VALUES (:n)"), {"n": n})
            answers.append(f"filed {n}")
        if self.fail_next_unit:
            self.fail_next_unit = False
            raise RuntimeError("the unit failed")
        return answers


async def stored(database: Database) -> list[int]:
    async with database.read_only() as uow:
        rows = await uow.session.execute(text("SELECT n FROM shared_rows ORDER BY n"))
        return [row[0] for row in rows]


async def test_items_submitted_together_share_one_unit_and_get_their_own_answers(
    database: Database,
) -> None:
    inserter = Inserter()
    units = SharedUnits(database, inserter.work)
    answers = await asyncio.gather(*(units.run(n) for n in range(5)))
    assert answers == [f"filed {n}" for n in range(5)]
    assert inserter.units == [[0, 1, 2, 3, 4]]
    assert await stored(database) == [0, 1, 2, 3, 4]


async def test_an_item_alone_runs_in_a_unit_of_its_own(database: Database) -> None:
    inserter = Inserter()
    units = SharedUnits(database, inserter.work)
    assert await units.run(7) == "filed 7"
    assert await units.run(8) == "filed 8"
    assert inserter.units == [[7], [8]]


async def test_a_refused_item_gets_its_error_and_writes_nothing_while_the_others_commit(
    database: Database,
) -> None:
    inserter = Inserter()
    units = SharedUnits(database, inserter.work)
    answers = await asyncio.gather(*(units.run(n) for n in (1, -2, 3)), return_exceptions=True)
    assert answers[0] == "filed 1" and answers[2] == "filed 3"
    assert isinstance(answers[1], NotFound) and answers[1].message == "no such thing as -2"
    assert await stored(database) == [1, 3]


async def test_a_failed_unit_fails_every_caller_in_it_and_keeps_nothing(
    database: Database,
) -> None:
    inserter = Inserter()
    units = SharedUnits(database, inserter.work)
    inserter.fail_next_unit = True
    answers = await asyncio.gather(*(units.run(n) for n in (1, 2)), return_exceptions=True)
    assert [type(a) for a in answers] == [RuntimeError, RuntimeError]
    assert await stored(database) == []
    assert await units.run(4) == "filed 4"  # the next unit is not affected
    assert await stored(database) == [4]


async def test_a_unit_takes_at_most_its_limit_of_items(database: Database) -> None:
    inserter = Inserter()
    units = SharedUnits(database, inserter.work, limit=2)
    answers = await asyncio.gather(*(units.run(n) for n in range(5)))
    assert answers == [f"filed {n}" for n in range(5)]
    assert inserter.units == [[0, 1], [2, 3], [4]]
