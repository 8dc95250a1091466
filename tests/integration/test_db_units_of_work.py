"""Units of work give their connection back however they end: committed, failed, or
cancelled while they run (a client that hangs up cancels its request's task)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import text

from tidings.runtime import Runtime


def checked_out(local: Runtime) -> int:
    pools = [engine.pool for engine in local.database.statement_engines]
    return sum(pool.checkedout() for pool in pools)  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["unit_of_work", "read_only"])
async def test_a_cancelled_unit_of_work_returns_its_connection(local: Runtime, kind: str) -> None:
    database = local.database
    inside = asyncio.Event()

    async def stuck() -> None:
        async with getattr(database, kind)() as uow:
            await uow.session.execute(text("SELECT 1"))
            inside.set()
            await asyncio.Event().wait()  # until cancelled

    task = asyncio.create_task(stuck())
    await inside.wait()
    assert checked_out(local) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert checked_out(local) == 0
    # The writer's turn was given back too: the next unit of work writes and commits.
    async with database.unit_of_work() as uow:
        assert (await uow.session.execute(text("SELECT 2"))).scalar() == 2
    assert checked_out(local) == 0


async def test_a_failed_unit_of_work_rolls_back_and_returns_its_connection(local: Runtime) -> None:
    database = local.database
    probe = "test:uow-probe"  # a rate-counter row: any table of the schema would do
    with pytest.raises(RuntimeError):
        async with database.unit_of_work() as uow:
            await uow.session.execute(
                text("INSERT INTO policy_counters (key, tat_us) VALUES (:key, 1)"), {"key": probe}
            )
            raise RuntimeError("refused")
    assert checked_out(local) == 0
    async with database.read_only() as uow:
        found = await uow.session.execute(
            text("SELECT count(*) FROM policy_counters WHERE key = :key"), {"key": probe}
        )
        assert found.scalar() == 0


@pytest.mark.parametrize("kind", ["unit_of_work", "read_only"])
async def test_units_of_work_in_a_row_let_other_tasks_run_between_them(
    local: Runtime, kind: str
) -> None:
    # On SQLite nothing inside a unit of work suspends; a delivery pass that runs one unit
    # after another must still let requests in between, or it holds the loop to the end.
    database = local.database
    order: list[str] = []

    async def units() -> None:
        for n in range(5):
            async with getattr(database, kind)() as uow:
                await uow.session.execute(text("SELECT 1"))
            order.append(f"unit {n}")

    async def other() -> None:
        for n in range(5):
            order.append(f"other {n}")
            await asyncio.sleep(0)

    await asyncio.gather(units(), other())
    assert order.index("other 1") < order.index("unit 4")


async def test_a_read_for_a_push_hands_its_rows_over_before_the_loop_moves_on(
    local: Runtime,
) -> None:
    """`read_only(then_yield=False)`: the caller acts on what it read before any other task
    runs (a push sends the page at once); by default the loop is passed on first."""
    database = local.database
    if database.dialect != "sqlite":
        pytest.skip("on PostgreSQL every statement suspends: there is no loop to pass on")
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    for then_yield, expected in ((False, ["caller", "other"]), (True, ["other", "caller"])):
        ran.clear()
        waiting = asyncio.create_task(other())
        async with database.read_only(then_yield=then_yield) as uow:
            await uow.session.execute(text("SELECT 1"))
        ran.append("caller")
        await waiting
        assert ran == expected


async def test_actions_registered_once_per_key_run_once_after_commit(local: Runtime) -> None:
    ran: list[str] = []

    def action(name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            ran.append(name)

        return run

    async with local.database.unit_of_work() as uow:
        uow.after_commit_once(("outbound", 1), action("first ring of 1"))
        uow.after_commit_once(("outbound", 1), action("second ring of 1"))
        uow.after_commit_once(("outbound", 2), action("ring of 2"))
        uow.after_commit(action("plain"))
        assert ran == []
    assert ran == ["first ring of 1", "ring of 2", "plain"]

    with pytest.raises(RuntimeError):
        async with local.database.unit_of_work() as uow:
            uow.after_commit_once(("outbound", 1), action("rolled back"))
            raise RuntimeError("the unit fails")
    assert ran == ["first ring of 1", "ring of 2", "plain"]
