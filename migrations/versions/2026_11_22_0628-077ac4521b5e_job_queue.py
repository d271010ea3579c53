"""job queue: procrastinate's schema (PostgreSQL only)

On the embedded default (SQLite) jobs run in-process on procrastinate's in-memory connector
and need no tables. The SQL is procrastinate 3.10.0's own schema, kept in migrations/sql so
this revision applies the same schema whatever version is installed later; upgrading
procrastinate means adding its migration files as new revisions.

Revision ID: 077ac4521b5e
Revises: c9f41a995268
Create Date: 2026-11-22 06:28:27.000000
"""

from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "077ac4521b5e"
down_revision: str | None = "c9f41a995268"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = Path(__file__).resolve().parents[1] / "sql" / "procrastinate-3.10.0-schema.sql"


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    # Sent as-is, without bind-parameter parsing: the PL/pgSQL in it uses `%` and `:`.
    cursor = op.get_bind().connection.cursor()
    cursor.execute(SCHEMA.read_text(encoding="utf-8"))
    cursor.close()


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(
        """
        DO $$
        DECLARE item record;
        BEGIN
          FOR item IN SELECT p.oid::regprocedure AS signature FROM pg_proc p
                      JOIN pg_namespace n ON n.oid = p.pronamespace
                      WHERE n.nspname = 'public' AND p.proname LIKE 'procrastinate%'
          LOOP
            EXECUTE 'DROP ROUTINE IF EXISTS ' || item.signature || ' CASCADE';
          END LOOP;
        END $$;
        """
    )
    for table in (
        "procrastinate_events",
        "procrastinate_periodic_defers",
        "procrastinate_jobs",
        "procrastinate_workers",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    op.execute(
        """
        DO $$
        DECLARE item record;
        BEGIN
          FOR item IN SELECT t.typname FROM pg_type t
                      JOIN pg_namespace n ON n.oid = t.typnamespace
                      WHERE n.nspname = 'public' AND t.typname LIKE 'procrastinate%'
                        AND t.typtype IN ('e', 'c') AND t.typname NOT LIKE '\\_%'
          LOOP
            EXECUTE 'DROP TYPE IF EXISTS ' || quote_ident(item.typname) || ' CASCADE';
          END LOOP;
        END $$;
        """
    )
