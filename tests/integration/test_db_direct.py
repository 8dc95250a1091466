"""Statements marked `direct` run straight on the driver (SQLite's, or asyncpg inside the
session's transaction) and read and write exactly what SQLAlchemy's ordinary path would;
anything they cannot do takes that path."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.exc import IntegrityError

from tidings.accounts.models import Account
from tidings.db.counters import PolicyCounter
from tidings.db.direct import DirectResult, direct
from tidings.runtime import Runtime

_accounts = Account.__table__
_counters = PolicyCounter.__table__

_ACCOUNT = direct(
    select(
        _accounts.c.id,
        _accounts.c.phone.label("number"),
        _accounts.c.kind,
        _accounts.c.created_at,
        _accounts.c.device_list_payload,
    ).where(_accounts.c.phone == bindparam("phone"))
)
# `kind`, `next_device_id` and others have Python-side defaults: SQLAlchemy fills them in.
_INSERT_ACCOUNT = direct(insert(_accounts))
_INSERT_COUNTER = direct(insert(_counters))
_SET_COUNTER = direct(
    update(_counters).where(_counters.c.key == bindparam("k")).values(tat_us=bindparam("t"))
)
_COUNTER = direct(select(_counters.c.tat_us).where(_counters.c.key == bindparam("k")))

CREATED = datetime(2026, 12, 7, 9, 30, 15, 123456, tzinfo=UTC)


def account(phone: str) -> Account:
    return Account(phone=phone, account_key="k" * 43, created_at=CREATED, registered_at=CREATED)


@pytest.fixture
def statements(local: Runtime) -> Iterator[list[str]]:
    """Every statement that reaches SQLAlchemy's cursor execution, while the fixture lives."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    engines = local.database.statement_engines
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    yield seen
    for engine in engines:
        event.remove(engine, "before_cursor_execute", count)


async def test_a_direct_select_reads_what_the_orm_wrote(local: Runtime) -> None:
    async with local.database.unit_of_work() as uow:
        uow.session.add(account("+15550100001"))  # pending: the select flushes it first
        result = await uow.session.execute(_ACCOUNT, {"phone": "+15550100001"})
        assert isinstance(result, DirectResult)
        row = result.one()
        assert row.number == row[1] == "+15550100001"
        assert row.kind == "person"
        assert row.created_at == CREATED and row.created_at.tzinfo is not None
        assert row.device_list_payload is None
        assert await uow.session.scalar(_ACCOUNT, {"phone": "+15550100001"}) == row.id
        assert (await uow.session.execute(_ACCOUNT, {"phone": "+15550100009"})).first() is None
    async with local.database.read_only() as uow:
        again = (await uow.session.execute(_ACCOUNT, {"phone": "+15550100001"})).one()
        assert tuple(again) == tuple(row)


async def test_a_direct_insert_writes_what_the_orm_reads(local: Runtime) -> None:
    # In another zone and on a whole second: stored as the ORM stores it (in UTC, with its
    # microseconds written out), so the ORM's own comparisons find it.
    later = (CREATED + timedelta(hours=5)).replace(microsecond=0)
    later = later.astimezone(timezone(timedelta(hours=2)))
    values = {
        "phone": "+15550100003",
        "kind": "business",
        "account_key": "k",
        "next_device_id": 3,
        "device_list_version": 2,
        "device_list_payload": None,
        "device_list_signature": "s",
        "created_at": CREATED,
        "registered_at": later,
    }
    async with local.database.unit_of_work() as uow:
        result = await uow.session.execute(_INSERT_ACCOUNT, values)
        assert isinstance(result, DirectResult)
    async with local.database.read_only() as uow:
        stored = await uow.session.scalar(select(Account).where(Account.registered_at == later))
        assert stored is not None
        assert (stored.kind, stored.next_device_id, stored.created_at, stored.registered_at) == (
            "business",
            3,
            CREATED,
            later,
        )


async def test_an_insert_with_python_defaults_takes_the_ordinary_path(local: Runtime) -> None:
    later = CREATED + timedelta(days=1)
    async with local.database.unit_of_work() as uow:
        await uow.session.execute(
            _INSERT_ACCOUNT,
            {
                "phone": "+15550100002",
                "account_key": "k",
                "created_at": later,
                "registered_at": later,
            },
        )
    async with local.database.read_only() as uow:
        row = (await uow.session.execute(_ACCOUNT, {"phone": "+15550100002"})).one()
        stored = await uow.session.get(Account, row.id)
        assert stored is not None and stored.next_device_id == 1
    assert row.kind == "person" and row.created_at == later


async def test_direct_writes_many_rows_count_them_and_roll_back(local: Runtime) -> None:
    async with local.database.unit_of_work() as uow:
        await uow.session.execute(
            _INSERT_COUNTER, [{"key": "test:a", "tat_us": 1}, {"key": "test:b", "tat_us": 2}]
        )
        changed = await uow.session.execute(_SET_COUNTER, {"k": "test:a", "t": 10})
        assert changed.rowcount == 1
        missing = await uow.session.execute(_SET_COUNTER, {"k": "test:none", "t": 10})
        assert missing.rowcount == 0
    with pytest.raises(IntegrityError):
        async with local.database.unit_of_work() as uow:
            await uow.session.execute(_SET_COUNTER, {"k": "test:b", "t": 20})
            await uow.session.execute(_INSERT_COUNTER, {"key": "test:a", "tat_us": 3})
    async with local.database.read_only() as uow:
        assert await uow.session.scalar(_COUNTER, {"k": "test:a"}) == 10
        assert await uow.session.scalar(_COUNTER, {"k": "test:b"}) == 2  # rolled back


async def test_cursor_listeners_see_every_statement(local: Runtime, statements: list[str]) -> None:
    async with local.database.read_only() as uow:
        result = await uow.session.execute(_COUNTER, {"k": "test:a"})
    assert not isinstance(result, DirectResult)
    assert any("policy_counters" in statement for statement in statements)


async def test_first_reads_one_committed_row_outside_a_unit_of_work(local: Runtime) -> None:
    database = local.database
    assert await database.first(_COUNTER, {"k": "test:c"}) is None
    async with database.unit_of_work() as uow:
        await uow.session.execute(_INSERT_COUNTER, {"key": "test:c", "tat_us": 7})
        assert await database.first(_COUNTER, {"k": "test:c"}) is None  # not committed yet
    row = await database.first(_COUNTER, {"k": "test:c"})
    assert row.tat_us == row[0] == 7


async def test_first_takes_the_ordinary_path_under_cursor_listeners(
    local: Runtime, statements: list[str]
) -> None:
    assert await local.database.first(_COUNTER, {"k": "test:d"}) is None
    assert any("policy_counters" in statement for statement in statements)
