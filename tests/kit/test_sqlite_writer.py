"""SQLite: this process's write transactions queue for the one write lock in Python, time
out as a 503, and let go at the commit, before the after-commit hooks (which may write)."""

from __future__ import annotations

import asyncio

import pytest

from custos import db as db_module
from custos.db import on_after_commit
from custos.exceptions import DatabaseUnavailable
from custos.runtime import Runtime


@pytest.fixture(autouse=True)
def _sqlite_only(runtime: Runtime) -> None:
    if runtime.db.is_postgres:
        pytest.skip("PostgreSQL has no single writer lock")


async def test_a_writer_waiting_too_long_gets_database_unavailable(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "SQLITE_WRITER_WAIT_SECONDS", 0.2)
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with runtime.db.transaction(system=True):
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await holding.wait()
    try:
        with pytest.raises(DatabaseUnavailable):
            async with runtime.db.transaction(system=True):
                pass
        async with runtime.db.transaction(system=True, write=False):
            pass  # readers never queue
    finally:
        release.set()
        await holder
    async with runtime.db.transaction(system=True):
        pass  # the lock was let go


async def test_an_after_commit_hook_may_write(runtime: Runtime) -> None:
    wrote = asyncio.Event()

    async def write_again() -> None:
        async with runtime.db.transaction(system=True):
            wrote.set()

    async with asyncio.timeout(5):
        async with runtime.db.transaction(system=True) as session:
            on_after_commit(session, write_again)
    assert wrote.is_set()


async def test_a_failed_transaction_lets_go(runtime: Runtime) -> None:
    with pytest.raises(RuntimeError):
        async with runtime.db.transaction(system=True):
            raise RuntimeError("boom")
    async with asyncio.timeout(5):
        async with runtime.db.transaction(system=True):
            pass
