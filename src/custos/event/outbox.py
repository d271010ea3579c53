"""PostgreSQL: committed events reach their `events.dispatch` jobs through `event_outbox`.

A transaction that writes events adds one outbox row naming them, in the same transaction,
so the row exists exactly when the events do. Workers turn the rows into dispatch jobs:
one statement takes up to `ROWS` rows (others' rows are skipped, not waited for), deletes
them and queues a job per tenant for up to `EVENTS_PER_JOB` of their events. Rows and jobs
change in one transaction, so a worker killed halfway loses nothing and doubles nothing.

Why not a job per transaction, as before (docs/decisions/0068): a procrastinate job row
costs its NOTIFY, which takes a lock every committing transaction then waits on, and a
history row; on the hottest write, `POST /customers`, that was a third of the database's
time. An outbox row costs an index entry, and a burst of writes costs a few jobs.

The embedded default (SQLite) keeps its dispatch jobs in `job_outbox` (worker/defer.py).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from custos.db import Database
from custos.models import EventOutbox
from custos.worker.defer import JobRequest

log = structlog.get_logger(__name__)

ROWS = 2_000
EVENTS_PER_JOB = 500

DISPATCH_TASK = "events.dispatch"
# The queue and priority every dispatch job gets.
_JOB = JobRequest(DISPATCH_TASK, {})

_INSERT = "INSERT INTO event_outbox (tenant_id, event_ids) VALUES (%s, %s::jsonb)"

_MOVE = sa.text(
    "WITH taken AS ("
    "  DELETE FROM event_outbox WHERE id IN ("
    "    SELECT id FROM event_outbox ORDER BY id LIMIT :rows FOR UPDATE SKIP LOCKED)"
    "  RETURNING id, tenant_id, event_ids"
    "), named AS ("
    "  SELECT t.tenant_id, e.event_id,"
    "         row_number() OVER (PARTITION BY t.tenant_id ORDER BY t.id, e.n) - 1 AS n"
    "    FROM taken t,"
    "         jsonb_array_elements_text(t.event_ids) WITH ORDINALITY AS e(event_id, n)"
    "), queued AS ("
    "  INSERT INTO procrastinate_jobs (queue_name, task_name, priority, args)"
    "  SELECT :queue, :task, :priority,"
    "         jsonb_build_object('tenant_id', tenant_id,"
    "                            'event_ids', jsonb_agg(event_id ORDER BY n))"
    "    FROM named GROUP BY tenant_id, n / :per_job"
    ") SELECT count(*) FROM taken"
)


def insert(tenant_id: str, event_ids: list[str]) -> tuple[str, list[Any]]:
    """The INSERT of one outbox row and its parameters, for a caller that sends its
    statements itself in one transaction (`Database.one_round_trip`)."""
    return _INSERT, [tenant_id, orjson.dumps(event_ids).decode()]


async def add(session: AsyncSession, by_tenant: dict[str, list[str]]) -> None:
    """One outbox row per tenant, in the session's transaction."""
    await session.execute(
        sa.insert(EventOutbox),
        [{"tenant_id": tenant, "event_ids": ids} for tenant, ids in by_tenant.items()],
    )


async def move_to_jobs(db: Database, rows: int = ROWS) -> int:
    """Turn up to `rows` outbox rows into dispatch jobs; returns how many rows were taken."""
    parameters = {
        "rows": rows,
        "queue": _JOB.queue,
        "task": _JOB.task_name,
        "priority": _JOB.priority,
        "per_job": EVENTS_PER_JOB,
    }
    async with db.transaction(system=True) as session:
        return int((await session.execute(_MOVE, parameters)).scalar_one())


async def move_all(db: Database) -> None:
    """Every row there is now (tests, maintenance commands)."""
    while await move_to_jobs(db) == ROWS:
        pass


async def waiting(db: Database) -> tuple[int, datetime | None]:
    """How many rows wait, and since when the oldest."""
    async with db.transaction(system=True, write=False) as session:
        count, oldest = (
            await session.execute(sa.text("SELECT count(*), min(queued_at) FROM event_outbox"))
        ).one()
    return int(count), oldest


async def move_forever(
    db: Database, poll_seconds: float, clock: Callable[[], float] = time.monotonic
) -> None:
    """A worker's loop. Idle, it looks every `poll_seconds`; for a whole poll after it last
    found rows it looks five times as often (events come in runs: the next of a run waits
    a fifth of a poll, not all of it); a full batch is followed at once by the next. The
    database being away only pauses it."""
    pause = poll_seconds
    found_at = -math.inf
    while True:
        try:
            moved = await move_to_jobs(db)
            if moved:
                found_at = clock()
            if moved == ROWS:
                continue
            recent = clock() - found_at < poll_seconds
            pause = poll_seconds / 5 if recent else poll_seconds
        except Exception as exc:
            log.warning("event_outbox_move_failed", error=type(exc).__name__)
            pause = min(max(pause * 2, 1.0), 30.0)
        await asyncio.sleep(pause)
