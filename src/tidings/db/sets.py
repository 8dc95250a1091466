"""`column IN (values)` for a set that varies in size, as one statement text.

A plain `column.in_(values)` renders one placeholder per value, so every size of set is another
statement: another entry in asyncpg's prepared-statement cache (100 per connection by default,
shared with every other statement of the app) and in sqlite3's statement cache. Batch look-ups
(a delivery batch's recipients: any number from 1 to 100) would churn both. Here the whole set is
one parameter: an array on PostgreSQL (`= ANY($1)`), a JSON array on SQLite (`IN (SELECT value
FROM json_each(?))`); both still look each value up in the column's index.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from sqlalchemy import String, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import ClauseElement, ColumnElement

from tidings.db.direct import direct

Statement = TypeVar("Statement", bound=ClauseElement)
DIALECTS = ("sqlite", "postgresql")


class SetParameter:
    """`column IN (values)` for a prebuilt statement: the set is the parameter `name`, given
    at execution as `**bind(dialect_name, members)`. One statement per dialect is built once
    (`condition`), so a batch look-up pays neither building a query nor generating its cache
    key, and on SQLite it can run direct (db/direct.py)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def condition(self, dialect_name: str, column: ColumnElement[Any]) -> ColumnElement[bool]:
        return _member_of(dialect_name, column, lambda type_: bindparam(self.name, type_=type_))

    def bind(self, dialect_name: str, members: Collection[int | str]) -> dict[str, Any]:
        """The statement's parameter for this set."""
        return {self.name: _encoded(dialect_name, members)}


def _member_of(
    dialect_name: str,
    column: QueryableAttribute[Any] | ColumnElement[Any],
    parameter: Callable[[Any], Any],
) -> ColumnElement[bool]:
    """`column` is a member of the set bound by `parameter(type)`: an array on PostgreSQL, a
    JSON array on SQLite."""
    if dialect_name == "postgresql":
        return column == any_(parameter(ARRAY(column.type)))
    members = func.json_each(parameter(String()))
    return column.in_(select(members.table_valued("value").c.value))


def _encoded(dialect_name: str, members: Collection[int | str]) -> Any:
    return list(members) if dialect_name == "postgresql" else json.dumps(list(members))


def per_dialect(
    build: Callable[[str], Statement], *, direct_on_sqlite: bool
) -> dict[str, Statement]:
    """`build(dialect_name)` for each dialect we run on, built once; the SQLite one marked
    `direct` when asked (a Core statement; an ORM select must load objects, not rows)."""
    built = {dialect: build(dialect) for dialect in DIALECTS}
    if direct_on_sqlite:
        direct(built["sqlite"])
    return built
