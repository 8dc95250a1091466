"""Hot Core statements run straight on asyncpg inside the session's transaction: PostgreSQL's
twin of db/direct.py.

Through `AsyncSession.execute` a statement on PostgreSQL passes SQLAlchemy's execution
machinery and a greenlet hand-off for every driver call. Measured on this machine, a one-row
select cost 145-153 µs of CPU through a connection and 54-63 µs on asyncpg alone; a send runs
about ten statements. A statement marked `direct(...)` is planned as on SQLite (compiled once
per set of parameter names, with the type processors SQLAlchemy would apply) and run on the
session's own asyncpg connection and transaction, through the pieces of SQLAlchemy's asyncpg
adapter that its cursor uses: the connection's mutex, its lazily begun transaction, its cache
of prepared statements and its translation of asyncpg's errors into the DBAPI's, which are
then wrapped as SQLAlchemy's (an `IntegrityError` stays an `IntegrityError`).

Those are private attributes of `AsyncAdapt_asyncpg_connection` in the pinned SQLAlchemy;
tests/integration/test_db_direct.py holds both paths to the same answers on PostgreSQL, so an
upgrade that changes them fails there first. A session with pending ORM changes is flushed
first, as autoflush would; engines with cursor listeners take the ordinary path.
"""

from __future__ import annotations

import re
from typing import Any, NoReturn, cast

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import ClauseElement

from tidings.db.direct import DirectResult, Plan, is_direct, plan_for, session_plan

_ADAPTED = "tidings.direct_pg.adapted"  # (transaction, adapted connection) in Session.info
_COUNT = re.compile(r"(?:SELECT|UPDATE|DELETE|INSERT \d+) (\d+)")


async def run_direct_pg(
    session: AsyncSession, statement: ClauseElement, params: Any
) -> DirectResult | None:
    """Run a marked `statement` on the session's asyncpg connection; None when it must take
    the ordinary path."""
    sync = session.sync_session
    plan = session_plan(sync, statement, params, "asyncpg")
    if plan is None:
        return None
    if sync.autoflush and (sync.new or sync.dirty or sync.deleted):
        await session.flush()
    transaction = sync.get_transaction()
    known = sync.info.get(_ADAPTED)
    if transaction is None or known is None or known[0] is not transaction:
        connection = await session.connection()
        adapted = (await connection.get_raw_connection()).dbapi_connection
        known = sync.info[_ADAPTED] = (sync.get_transaction(), adapted)
    return await run_plan_pg(known[1], cast(Engine, sync.bind), plan, params)


async def first_pg(connection: AsyncConnection, statement: ClauseElement, params: Any) -> Any:
    """The first row of a marked select on `connection` (autocommit, outside any unit of
    work); `NotImplemented` when it must take the ordinary path."""
    bind = connection.sync_engine
    plan = plan_for(bind, statement, params, "asyncpg")
    if plan is None or plan.row is None:
        return NotImplemented
    adapted = (await connection.get_raw_connection()).dbapi_connection
    return (await run_plan_pg(adapted, bind, plan, params)).first()


async def run_plan_pg(adapted: Any, engine: Engine, plan: Plan, params: Any) -> DirectResult:
    dialect: Any = engine.dialect
    async with adapted._execute_mutex:
        if adapted._transaction is None:
            await adapted._start_transaction()  # returns at once in autocommit
        try:
            if isinstance(params, list):
                await adapted._connection.executemany(
                    plan.sql, [plan.arguments(each) for each in params]
                )
                return DirectResult([], -1)
            prepared, _attributes = await adapted._prepare(
                plan.sql, dialect._invalidate_schema_cache_asof
            )
            raw = await prepared.fetch(*plan.arguments(params or {}))
            counted = _COUNT.match(prepared.get_statusmsg() or "")
        except Exception as error:
            _raise_translated(adapted, dialect, plan, params, error)
    rows = plan.rows(raw) if raw and plan.row is not None else []
    return DirectResult(rows, int(counted.group(1)) if counted else -1)


def _raise_translated(
    adapted: Any, dialect: Any, plan: Plan, params: Any, error: Exception
) -> NoReturn:
    """Raise `error` as the ordinary path would: the adapter's DBAPI error, wrapped as
    SQLAlchemy's."""
    dbapi_error = dialect.loaded_dbapi.Error
    try:
        adapted._handle_exception(error)  # raises the DBAPI's error for it
    except dbapi_error as translated:
        raise DBAPIError.instance(plan.sql, params, translated, dbapi_error) from error
    raise error


class DirectSession(AsyncSession):
    """An `AsyncSession` that runs statements marked `direct` on asyncpg (see the module's
    docstring); every other call is `AsyncSession`'s own."""

    async def execute(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        if not kw and is_direct(statement):
            result = await run_direct_pg(self, statement, params)
            if result is not None:
                return result
        return await super().execute(statement, params, **kw)

    async def scalar(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        if not kw and is_direct(statement):
            result = await run_direct_pg(self, statement, params)
            if result is not None:
                return result.scalar()
        return await super().scalar(statement, params, **kw)

    async def scalars(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        # `AsyncSession.scalars` calls `execute` with its default options spelled out, which
        # would send every statement the ordinary way.
        return (await self.execute(statement, params, **kw)).scalars()
