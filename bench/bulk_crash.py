"""Crash script: kill -9 `custos worker` processes in the middle of a 100,000-row import,
start new ones, and check the result is exact and every kill interrupted the import
(PostgreSQL only).

Two workers run at once; every few seconds the one running the import is killed with
SIGKILL and a new one started, `--kills` times, while the import runs. At the end: the
operation is completed with one attempt more per kill, rows processed = rows in the file,
created + failed = rows, the customers table holds exactly `created` rows with distinct
external ids, and the error report lists every bad row once. Prints a table, then one
JSON line. Usage: python bench/bulk_crash.py [--customers 100000 --kills 3]; DATABASE_URL
as for bench/bulk.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from _common import BenchError, bench_settings, exit_cleanly_on_sigterm, settings_env
from bulk import customer_rows, make_tenant, queue_import, write_csv
from custos.bulk.formats import FileFormat
from custos.config import Settings
from custos.kit.scratch import throwaway_database
from custos.migrate import upgrade
from custos.models import BulkOperation, BulkOperationError, Customer
from custos.runtime import Runtime


def worker(settings: Settings) -> subprocess.Popen[bytes]:
    env = settings_env(settings)
    env.update(
        {
            "CUSTOS_BULK_STORAGE_DIR": settings.bulk_storage_dir,
            "CUSTOS_BULK_CHUNK_ROWS": str(settings.bulk_chunk_rows),
            "CUSTOS_BULK_LEASE_SECONDS": str(settings.bulk_lease_seconds),
        }
    )
    return subprocess.Popen(
        [sys.executable, "-c", "from custos.cli import main; main()", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _lease_holder(workers: list[subprocess.Popen[bytes]], lease_owner: str | None) -> int | None:
    """The index of the worker holding the import's lease (its owner names the process:
    host:pid:token), so a kill interrupts the import rather than an idle worker; None while
    none of them holds it (a new worker is taking the import over)."""
    _, _, rest = (lease_owner or "").partition(":")
    pid = rest.partition(":")[0]
    for index, process in enumerate(workers):
        if str(process.pid) == pid:
            return index
    return None


async def scenario(settings: Settings, rows: int, kills: int, workdir: Path) -> dict[str, Any]:
    runtime = Runtime.build(settings)
    await runtime.start()
    workers: list[subprocess.Popen[bytes]] = []
    try:
        actor = await make_tenant(runtime)
        path = workdir / "customers.csv"
        write_csv(customer_rows(rows), path)
        op, total = await queue_import(runtime, actor, path, FileFormat.csv)
        started = time.monotonic()
        workers = [worker(settings), worker(settings)]
        killed_at: list[int] = []

        async def state() -> BulkOperation:
            async with runtime.db.transaction(system=True, write=False) as session:
                found = await session.get(BulkOperation, op.id)
                assert found is not None
                return found

        while True:
            current = await state()
            if current.status != "running" and current.status != "queued":
                break
            holder = _lease_holder(workers, current.lease_owner)
            due = current.checkpoint > (len(killed_at) + 1) * total // (kills + 2)
            if len(killed_at) < kills and due and holder is not None:
                victim = workers.pop(holder)
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                killed_at.append(current.checkpoint)
                workers.append(worker(settings))
            if time.monotonic() - started > 900:
                raise BenchError(
                    f"not finished after 900 s: {current.status} at {current.checkpoint}"
                )
            await asyncio.sleep(0.2)
        elapsed = time.monotonic() - started
        async with runtime.db.transaction(tenant_id=actor.tenant_id, write=False) as session:
            count, distinct = (
                await session.execute(
                    sa.select(
                        sa.func.count(), sa.func.count(sa.distinct(Customer.external_id))
                    ).where(Customer.tenant_id == actor.tenant_id)
                )
            ).one()
            errors, error_rows = (
                await session.execute(
                    sa.select(
                        sa.func.count(), sa.func.count(sa.distinct(BulkOperationError.row))
                    ).where(BulkOperationError.operation_id == op.id)
                )
            ).one()
        return {
            "rows": total,
            "status": current.status,
            "attempts": current.attempts,
            "killed_at_rows": killed_at,
            "processed": current.rows_processed,
            "created": current.created,
            "failed": current.failed,
            "customers_in_table": count,
            "distinct_external_ids": distinct,
            "error_rows": errors,
            "distinct_error_rows": error_rows,
            "seconds": round(elapsed, 1),
            # Each kill hit the worker running the import: one attempt more per kill.
            "every_kill_interrupted": current.attempts == len(killed_at) + 1,
            "exact": current.status == "completed"
            and current.rows_processed == total
            and current.created + current.failed == total
            and count == distinct == current.created
            and errors == error_rows == current.failed,
        }
    finally:
        for w in workers:
            w.send_signal(signal.SIGKILL)
            w.wait()
        await runtime.stop()


def main() -> None:
    exit_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--kills", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with throwaway_database("custos-bench-crash") as url, tempfile.TemporaryDirectory() as tmp:
        settings = bench_settings(
            url,
            redis_url=None,
            bulk_storage_dir=str(Path(tmp) / "files"),
            bulk_chunk_rows=2000,
            bulk_lease_seconds=3,
        )
        upgrade(settings)
        result = asyncio.run(scenario(settings, args.customers, args.kills, Path(tmp)))
    print("(the machine may be shared with other work)")
    for key, value in result.items():
        print(f"{key:<24}{value}")
    print(json.dumps(result))
    if not (result["exact"] and result["every_kill_interrupted"]):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
