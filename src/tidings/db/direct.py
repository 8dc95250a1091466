"""Hot Core statements run straight on SQLite's driver, compiled once.

A statement executed through a `Session` passes SQLAlchemy's whole execution machinery every
time: the compiled-cache look-up, an execution context, events, parameter and result
processing. On SQLite, where the statement itself runs in microseconds, that machinery is
most of the cost: measured on this machine, a one-row select through the unit of work's
session took 54 µs, through a `Connection` 40 µs, and on the sqlite3 driver 5 µs. A send runs
about ten statements, so the machinery was a quarter of its CPU.

`direct(statement)` marks a module-level Core statement (a select, or an insert, update or
upsert with bound parameters); `InlineSession` (db/sqlite_inline.py) then runs it on the
session's own driver connection and transaction: the session is flushed first if it
autoflushes, as `Session.execute` does; parameters and results go through the same type
processors SQLAlchemy would apply (UTC datetimes, JSON, enums), compiled once per set of
parameter names; driver errors are wrapped as SQLAlchemy's. A statement that needs more than
that (Python-side column defaults, expanding parameters) and a session whose engine has
cursor listeners (the tests that count statements) take the ordinary path. On PostgreSQL the
same plans run on asyncpg inside the session's transaction (db/direct_pg.py).

`Database.first` reads one row of a marked select outside any unit of work (`read_first`): a
single SQLite statement is atomic, and a session's transaction costs several times the read
(92 µs against 15 for a pooled connection here). Every Business API request and every device
request authenticates that way.

The processors and result columns are read from SQLAlchemy's compiled statement
(`_cached_bind_processor`, `_cached_result_processor`, `_result_columns`: what its own
execution uses, on the pinned version); tests/integration/test_db_direct.py holds the two
paths to the same answers, so an upgrade that changes them fails there first.

Results support what the call sites use: `first`, `one`, `one_or_none`, `all`, `scalar`,
`scalar_one`, `scalar_one_or_none`, `scalars`, iteration and `rowcount`; rows are named tuples,
so `row.column` and `row[0]` work as on SQLAlchemy's rows.
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, MultipleResultsFound, NoResultFound
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Statement = TypeVar("Statement", bound=ClauseElement)

# Marked statements by identity. They are module-level constants, so the dict holds each one
# for the life of the process and an id is never reused while registered.
_MARKED: dict[int, ClauseElement] = {}


def direct(statement: Statement) -> Statement:
    """Mark `statement` to run straight on SQLite's driver (see the module's docstring)."""
    _MARKED[id(statement)] = statement
    return statement


def is_direct(statement: object) -> bool:
    return id(statement) in _MARKED


Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class Plan:
    sql: str
    names: tuple[str, ...]  # the positional parameters' names, in order
    binds: tuple[Processor, ...]  # one per positional parameter
    row: Any  # a namedtuple class, or None when the statement returns no rows
    results: tuple[Processor, ...]
    constants: Mapping[str, Any]  # the values of parameters written into the statement

    def arguments(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        values = []
        constants = self.constants
        for name, process in zip(self.names, self.binds, strict=True):
            value = params[name] if name in params else constants[name]
            values.append(value if process is None or value is None else process(value))
        return tuple(values)

    def rows(self, raw: list[tuple[Any, ...]]) -> list[Any]:
        make = self.row._make
        if not any(self.results):
            return [make(values) for values in raw]
        processors = self.results
        return [
            make(
                value if process is None or value is None else process(value)
                for process, value in zip(processors, values, strict=True)
            )
            for values in raw
        ]


_DRIVER = "tidings.direct.driver"  # the key of (transaction, driver connection) in Session.info

# (statement id, parameter names, dialect) -> plan, or None when the statement takes the
# ordinary path.
_PLANS: dict[tuple[int, tuple[str, ...], str], Plan | None] = {}


def _plan(statement: ClauseElement, keys: tuple[str, ...], dialect: Dialect) -> Plan | None:
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    assert isinstance(compiled, SQLCompiler)
    if (
        not compiled.positional
        or compiled.insert_prefetch
        or compiled.update_prefetch
        or compiled.literal_execute_params
        or compiled.post_compile_params
    ):
        return None
    names = tuple(compiled.positiontup or ())
    constants = {}
    for name in set(names) - set(keys):
        bind = compiled.binds[name]
        if bind.required or bind.callable is not None:
            return None  # left for SQLAlchemy to fill in, or to refuse
        constants[name] = bind.value  # `status == "accepted"`: a value written in the statement
    binds = tuple(compiled.binds[name].type._cached_bind_processor(dialect) for name in names)
    columns = compiled._result_columns
    if not columns:
        return Plan(str(compiled), names, binds, None, (), constants)
    row = namedtuple("Row", [column.keyname for column in columns], rename=True)  # type: ignore[misc]
    results = tuple(column.type._cached_result_processor(dialect, None) for column in columns)
    return Plan(str(compiled), names, binds, row, results, constants)


def session_plan(
    session: Session, statement: ClauseElement, params: Any, driver: str
) -> Plan | None:
    """The plan of a marked `statement` on the session's engine if that runs on `driver`."""
    bind = session.bind
    return plan_for(bind, statement, params, driver) if isinstance(bind, Engine) else None


def run_direct(session: Session, statement: ClauseElement, params: Any) -> DirectResult | None:
    """Run a marked `statement` on the session's SQLite connection; None when it must take
    the ordinary path (see the module's docstring)."""
    plan = session_plan(session, statement, params, "pysqlite")
    if plan is None:
        return None
    if session.autoflush:
        session.flush()
    # The driver connection of the session's transaction, remembered for its next statements
    # (a unit of work runs about ten): `Session.connection()` costs as much as the statement.
    transaction = session.get_transaction()
    known = session.info.get(_DRIVER)
    if transaction is None or known is None or known[0] is not transaction:
        driver = session.connection().connection.driver_connection
        known = session.info[_DRIVER] = (session.get_transaction(), driver)
    return run_plan(known[1], plan, params)


def read_first(engine: Engine, statement: ClauseElement, params: Mapping[str, Any]) -> Any:
    """The first row of a marked select, read on a connection of its own outside any
    transaction (one SQLite statement is atomic): none of a session's setup, which costs
    several times the statement. `NotImplemented` when it must take the ordinary path."""
    plan = plan_for(engine, statement, params, "pysqlite")
    if plan is None or plan.row is None:
        return NotImplemented
    connection = engine.raw_connection()
    try:
        return run_plan(connection.driver_connection, plan, params).first()
    finally:
        connection.close()


def plan_for(engine: Engine, statement: ClauseElement, params: Any, driver: str) -> Plan | None:
    """The statement's plan on `engine` if it runs on `driver` (pysqlite here, asyncpg in
    db/direct_pg.py); None when it takes the ordinary path there."""
    if (
        engine.dialect.driver != driver
        or engine.dispatch.before_cursor_execute
        or engine.dispatch.after_cursor_execute
    ):
        return None
    many = isinstance(params, list)
    if many and not params:
        return None
    first: Mapping[str, Any] = params[0] if many else (params or {})
    key = (id(statement), tuple(first), engine.dialect.name)
    if key in _PLANS:
        plan = _PLANS[key]
    else:
        plan = _PLANS[key] = _plan(statement, key[1], engine.dialect)
    if plan is None or (many and plan.row is not None):
        return None
    return plan


def run_plan(driver: Any, plan: Plan, params: Any) -> DirectResult:
    assert isinstance(driver, sqlite3.Connection)
    try:
        if isinstance(params, list):
            cursor = driver.executemany(plan.sql, [plan.arguments(each) for each in params])
        else:
            cursor = driver.execute(plan.sql, plan.arguments(params or {}))
        raw = cursor.fetchall() if plan.row is not None else []
    except sqlite3.Error as exc:
        raise DBAPIError.instance(plan.sql, params, exc, sqlite3.Error) from exc
    return DirectResult(plan.rows(raw) if raw else [], cursor.rowcount)


class _Rows:
    __slots__ = ("_items",)

    def __init__(self, items: Sequence[Any]) -> None:
        self._items = items

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def all(self) -> list[Any]:
        return list(self._items)

    def first(self) -> Any:
        return self._items[0] if self._items else None

    def one_or_none(self) -> Any:
        if len(self._items) > 1:
            raise MultipleResultsFound("Multiple rows were found when one or none was required")
        return self.first()

    def one(self) -> Any:
        if not self._items:
            raise NoResultFound("No row was found when one was required")
        return self.one_or_none()


class DirectResult(_Rows):
    """The rows of a direct statement, read the way SQLAlchemy's results are."""

    __slots__ = ("rowcount",)

    def __init__(self, rows: Sequence[Any], rowcount: int) -> None:
        super().__init__(rows)
        self.rowcount = rowcount

    def fetchall(self) -> list[Any]:
        return self.all()

    def scalar(self) -> Any:
        return self._items[0][0] if self._items else None

    def scalar_one_or_none(self) -> Any:
        row = self.one_or_none()
        return None if row is None else row[0]

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalars(self) -> DirectScalars:
        return DirectScalars([row[0] for row in self._items])


class DirectScalars(_Rows):
    """The first column of a direct statement's rows."""

    __slots__ = ()
