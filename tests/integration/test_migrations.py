"""The Alembic migrations build exactly the schema the models describe, on both stores."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tidings.db.engine import make_engine
from tidings.schema import metadata


def test_migrations_match_the_models(database_url: str) -> None:
    async def differences() -> list[object]:
        engine = make_engine(database_url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(
                    lambda sync: compare_metadata(
                        MigrationContext.configure(sync, opts={"compare_type": True}), metadata
                    )
                )
        finally:
            await engine.dispose()

    assert asyncio.run(differences()) == []
