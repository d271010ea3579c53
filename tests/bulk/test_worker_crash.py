"""Kill -9 a `custos worker` in the middle of an import, start another: the final count is
exact and nothing is duplicated. PostgreSQL only: separate worker processes share its queue.
(bench/bulk_crash.py does the same at 100,000 rows, killing several times.)"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from custos.config import Settings
from custos.models import BulkOperation, Customer
from custos.runtime import Runtime
from tests.bulk.helpers import csv_bytes, start_import
from tests.bulk.test_import import customer_rows
from tests.factories import Factory

LEASE_SECONDS = 2


def _worker(settings: Settings) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "CUSTOS_SECRET_KEY": settings.secret_key.get_secret_value(),
        "CUSTOS_ENVIRONMENT": "test",
        "CUSTOS_LOG_LEVEL": "WARNING",
        "CUSTOS_BULK_STORAGE_DIR": settings.bulk_storage_dir,
        "CUSTOS_BULK_CHUNK_ROWS": "500",
        "CUSTOS_BULK_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    env.pop("REDIS_URL", None)
    return subprocess.Popen(
        [sys.executable, "-c", "from custos.cli import main; main()", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
    )


async def _state(runtime: Runtime, op_id: str) -> BulkOperation:
    async with runtime.db.transaction(system=True, write=False) as session:
        op = await session.get(BulkOperation, op_id)
        assert op is not None
        return op


async def _wait(runtime: Runtime, op_id: str, done: Any, timeout: float) -> BulkOperation:
    deadline = time.monotonic() + timeout
    while True:
        op = await _state(runtime, op_id)
        if done(op):
            return op
        assert time.monotonic() < deadline, f"still {op.status} at row {op.checkpoint}"
        await asyncio.sleep(0.05)


async def test_kill_9_mid_import_then_restart_gives_exact_counts_and_no_duplicates(
    raw_client: httpx.AsyncClient, factory: Factory, runtime: Runtime, settings: Settings
) -> None:
    if not settings.is_postgres:
        pytest.skip("separate worker processes share a PostgreSQL queue")
    tenant = await factory.tenant()
    rows, faults = customer_rows(20_000, bad_every=50)
    bad = {n for n, f in faults.items() if f != "phone"}  # phones are lenient here
    started = await start_import(raw_client, tenant.admin_key, csv_bytes(rows))
    op_id = started.json()["id"]
    # The upload queued the job in its own transaction: the worker finds it waiting.
    first = _worker(settings)
    try:
        op = await _wait(runtime, op_id, lambda o: o.checkpoint >= 2000, timeout=60)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    killed_at = (await _state(runtime, op_id)).checkpoint
    assert 0 < killed_at < 20_001
    second = _worker(settings)  # re-defers what the dead worker held once its lease ran out
    try:
        op = await _wait(runtime, op_id, lambda o: o.status != "running", timeout=90)
    finally:
        second.terminate()
        second.wait(timeout=20)
    print(f"killed after row {killed_at}; resumed and finished in {op.attempts} attempts")
    assert op.status == "completed"
    assert op.attempts >= 2
    assert (op.rows_processed, op.created, op.failed) == (20_000, 20_000 - len(bad), len(bad))
    async with runtime.db.transaction(tenant_id=tenant.id, write=False) as session:
        count, distinct = (
            await session.execute(
                sa.select(sa.func.count(), sa.func.count(sa.distinct(Customer.external_id))).where(
                    Customer.tenant_id == tenant.id
                )
            )
        ).one()
    assert count == distinct == 20_000 - len(bad)
