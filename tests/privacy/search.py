"""Search every table of the database for strings: the proof that an erasure left nothing.

Every table is read whole, whatever feature made it (the job queue's too), so a table added
later is searched without changing this."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from custos.cache.store import MemoryStore
from custos.runtime import Runtime

SKIPPED = {"alembic_version"}


def _as_text(value: Any) -> str:
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("latin-1")
    return str(value)


async def find_everywhere(runtime: Runtime, needles: list[str]) -> dict[str, list[str]]:
    """table -> the needles found in it (case-insensitive; also as JSON escapes them)."""
    forms = {n: {n.lower(), json.dumps(n)[1:-1].lower()} for n in needles}
    found: dict[str, list[str]] = {}
    async with runtime.db.transaction(system=True, write=False) as session:
        if runtime.db.is_postgres:
            tables = list(
                await session.scalars(
                    sa.text(
                        "SELECT table_name FROM information_schema.tables"
                        " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
                    )
                )
            )
        else:
            tables = list(
                await session.scalars(
                    sa.text("SELECT name FROM sqlite_master WHERE type = 'table'")
                )
            )
        for table in sorted(set(tables) - SKIPPED):
            rows = await session.execute(sa.text(f'SELECT * FROM "{table}"'))
            text = "\n".join(" ".join(_as_text(v) for v in row) for row in rows).lower()
            hits = [n for n, variants in forms.items() if any(v in text for v in variants)]
            if hits:
                found[table] = hits
    return found


async def find_in_cache(runtime: Runtime, tenant_id: str, needles: list[str]) -> list[str]:
    """The tenant's read-cache entries (Redis or this process's memory) holding a needle."""
    store = runtime.read_cache.store
    marker = f":t:{tenant_id}:"
    entries: dict[str, bytes] = {}
    if isinstance(store, MemoryStore):
        entries = {k: v for k, (_, v) in store._entries.items() if marker in k}
    else:
        assert runtime.redis is not None
        async for key in runtime.redis.scan_iter(match=f"*{marker}*", count=1000):
            if await runtime.redis.type(key) == b"string":
                value = await runtime.redis.get(key)
                entries[key.decode()] = value or b""
    lowered = [n.lower().encode() for n in needles]
    return sorted(k for k, v in entries.items() if any(n in v.lower() for n in lowered))


def find_in_files(root: Path, needles: list[str]) -> list[str]:
    """Files under root holding a needle (text files: CSV, JSON, NDJSON)."""
    lowered = [n.lower().encode() for n in needles]
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and any(n in path.read_bytes().lower() for n in lowered)
    )
