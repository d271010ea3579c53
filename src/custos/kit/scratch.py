"""Scratch databases for the test suite and the benchmarks: the same backend as the
environment names, but a fresh database that is dropped afterwards."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url


def _postgres_admin_url() -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql")) else None


@contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """A new, empty database URL: PostgreSQL when DATABASE_URL names it (a database created
    for the run and dropped after), otherwise a SQLite file in a temporary directory."""
    admin_url = _postgres_admin_url()
    if admin_url is None:
        with tempfile.TemporaryDirectory(prefix=f"{prefix}-") as tmp:
            yield f"sqlite+aiosqlite:///{Path(tmp) / 'custos.db'}"
        return
    name = f"{prefix.replace('-', '_')}_{secrets.token_hex(4)}"
    plain = make_url(admin_url).set(drivername="postgresql")
    conninfo = plain.render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield plain.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
