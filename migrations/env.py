"""Alembic environment: one history for PostgreSQL and SQLite (batch mode on SQLite)."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from custos.config import get_settings
from custos.db import create_engine
from custos.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    # Migrations run as the connecting (owner) role, not the runtime role.
    settings = context.config.attributes.get("settings") or get_settings()
    engine = create_engine(settings, runtime_role=False)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_online())
