"""`custos migrate`: the Alembic history, then (PostgreSQL) the runtime role and its grants."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from custos.config import Settings
from custos.db import create_engine

# Tables the runtime role may read and append to but never change: the audit log.
APPEND_ONLY_TABLES = ("audit_logs",)
# Tables only the owner's SECURITY DEFINER functions touch: statistics across all tenants.
OWNER_ONLY_TABLES = ("customer_search_trigram_stats",)


def migrations_dir() -> Path:
    configured = os.environ.get("CUSTOS_MIGRATIONS_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["settings"] = settings
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    command.upgrade(alembic_config(settings), revision)
    if settings.is_postgres:
        asyncio.run(ensure_runtime_role(settings))


async def ensure_runtime_role(settings: Settings) -> None:
    role = settings.db_runtime_role  # validated as a plain identifier in Settings
    engine = create_engine(settings, runtime_role=False)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    f"""
                    DO $$ BEGIN
                      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
                        CREATE ROLE "{role}" NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB
                          NOCREATEROLE;
                      END IF;
                    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                    END $$;
                    """
                )
            )
            attrs = (
                await conn.execute(
                    sa.text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :r"),
                    {"r": role},
                )
            ).one()
            if attrs.rolsuper or attrs.rolbypassrls:
                raise RuntimeError(
                    f"the runtime role {role!r} is a superuser or bypasses row-level security; "
                    "row-level security would not hold. Use another CUSTOS_DB_RUNTIME_ROLE."
                )
            me = (await conn.execute(sa.text("SELECT current_user"))).scalar_one()
            if me != role:
                # Lets a non-superuser owner `SET ROLE` to the runtime role.
                await conn.execute(sa.text(f'GRANT "{role}" TO CURRENT_USER'))
            statements = [
                f'GRANT USAGE ON SCHEMA public TO "{role}"',
                f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"',
                f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"',
                f'REVOKE ALL ON alembic_version FROM "{role}"',
            ]
            statements += [f'REVOKE ALL ON {table} FROM "{role}"' for table in OWNER_ONLY_TABLES]
            statements += [
                f'REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM "{role}"'
                for table in APPEND_ONLY_TABLES
            ]
            # Sealing sets a new audit row's place in the chain, and nothing else; a trigger
            # refuses any change to a row once sealed.
            statements.append(f'GRANT UPDATE (seq, prev_hash, hash) ON audit_logs TO "{role}"')
            for statement in statements:
                await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()
