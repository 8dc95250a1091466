"""Running a server-side command on a data folder: settings, schema, one runtime, clean errors.

Every operator command (`admin`, `business`, `templates`) does the same steps: load settings
for `--data`/`--db`, bring the schema up to date, build a runtime, act, close the runtime, and
turn an AppError into a message on stderr with a non-zero exit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from tidings.cli.errors import fail
from tidings.config import Settings, load_settings
from tidings.db.migrate import upgrade
from tidings.errors import AppError
from tidings.runtime import Runtime, build_runtime

T = TypeVar("T")

DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data", help="Data folder (SQLite database, secrets). Default ~/.tidings/server."
    ),
]
DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL, e.g. postgresql+asyncpg://user@127.0.0.1/tidings."),
]
JsonObjectOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
JsonLinesOption = Annotated[bool, typer.Option("--json", help="Print JSON lines.")]


def settings_for(data: Path | None, db: str | None = None, **server: Any) -> Settings:
    overrides: dict[str, Any] = {}
    if db:
        overrides["database"] = {"url": db}
    if server:
        overrides["server"] = server
    return load_settings(data, **overrides)


def prepare(settings: Settings) -> None:
    """Create the data folder and bring the schema up to date."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)


def prepared(data: Path | None, db: str | None) -> Settings:
    """The settings for `--data`/`--db`, with the folder made and the schema current."""
    settings = settings_for(data, db)
    prepare(settings)
    return settings


async def with_runtime(settings: Settings, action: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run `action` on a fresh runtime and close the runtime whatever happens."""
    runtime = build_runtime(settings)
    try:
        return await action(runtime)
    finally:
        await runtime.close()


def run(work: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; an AppError becomes its message on stderr and exit code 1."""
    try:
        return asyncio.run(work)
    except AppError as exc:
        raise fail(exc.message) from None
