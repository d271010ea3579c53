"""Deferring a job in the caller's transaction: the job exists exactly when the change that
asked for it was committed. No job for a rolled-back change, no change without its job.

    from custos.worker.defer import defer
    defer(session, "bulk.import", import_id=row.id)   # queued; written just before commit

- PostgreSQL: the job is a row of procrastinate's queue, inserted on the transaction's own
  connection just before it commits; `custos worker` processes are woken by the row's NOTIFY.
- SQLite (the embedded default): procrastinate's queue there is in memory, so the job is
  written to `job_outbox` in the transaction, handed to the process's in-process worker after
  the commit, deleted once it has run, and queued again when the process starts
  (worker/recovery.py). A job deferred while no in-process worker runs (a CLI command) waits
  in the outbox for the next start.

Arguments must be JSON values. Handlers must be idempotent: a job can run more than once
(a worker killed after the work but before recording it, a stalled job queued again).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from custos.db import database_of, on_after_commit, on_before_commit
from custos.kit.ids import new_id
from custos.models import JobOutbox

_PENDING = "custos.jobs.pending"
_OUTBOX = cast(sa.Table, JobOutbox.__table__)

# ON CONFLICT: a job with a queueing lock that is already queued is not queued twice.
_INSERT_JOBS = sa.text(
    "INSERT INTO procrastinate_jobs"
    " (queue_name, task_name, priority, lock, queueing_lock, args, scheduled_at)"
    " SELECT * FROM unnest(CAST(:queues AS varchar[]), CAST(:tasks AS varchar[]),"
    " CAST(:priorities AS integer[]), CAST(:locks AS text[]), CAST(:queueing_locks AS text[]),"
    " CAST(:args AS jsonb[]), CAST(:scheduled AS timestamptz[]))"
    " ON CONFLICT DO NOTHING"
)


@dataclass(frozen=True, slots=True)
class JobRequest:
    task_name: str
    args: dict[str, Any]
    queue: str = "default"
    priority: int = 0
    lock: str | None = None
    queueing_lock: str | None = None
    scheduled_at: datetime | None = None
    id: str = field(default_factory=lambda: new_id("job"))


def defer(
    session: AsyncSession,
    task_name: str,
    *,
    queue: str = "default",
    priority: int = 0,
    lock: str | None = None,
    queueing_lock: str | None = None,
    schedule_at: datetime | None = None,
    **args: Any,
) -> None:
    """Queue a job on the session; it is written with the transaction's commit.

    `lock`: jobs sharing it never run at the same time. `queueing_lock`: at most one job
    holding it waits in the queue; deferring another while one waits does nothing.
    """
    defer_request(
        session, JobRequest(task_name, args, queue, priority, lock, queueing_lock, schedule_at)
    )


def defer_request(session: AsyncSession, job: JobRequest) -> None:
    session.info.setdefault(_PENDING, []).append(job)
    on_before_commit(session, "jobs", _write_pending)


def pending_count(session: AsyncSession) -> int:
    return len(session.info.get(_PENDING, []))


def discard_after(session: AsyncSession, count: int) -> None:
    """Forget jobs queued after `count`: their savepoint was rolled back."""
    del session.info.get(_PENDING, [])[count:]


async def _write_pending(session: AsyncSession) -> None:
    pending: list[JobRequest] = session.info.pop(_PENDING, [])
    if not pending:
        return
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            _INSERT_JOBS,
            {
                "queues": [j.queue for j in pending],
                "tasks": [j.task_name for j in pending],
                "priorities": [j.priority for j in pending],
                "locks": [j.lock for j in pending],
                "queueing_locks": [j.queueing_lock for j in pending],
                "args": [orjson.dumps(j.args).decode() for j in pending],
                "scheduled": [j.scheduled_at for j in pending],
            },
        )
        return
    await session.execute(
        sa.insert(_OUTBOX),
        [
            {
                "id": j.id,
                "task_name": j.task_name,
                "queue_name": j.queue,
                "args": j.args,
                "priority": j.priority,
                "lock": j.lock,
                "queueing_lock": j.queueing_lock,
                "scheduled_at": j.scheduled_at,
            }
            for j in pending
        ],
    )
    db = database_of(session)
    if db is None:
        return

    async def hand_over() -> None:
        sink = db.job_sink
        if sink is not None:
            await sink.submit(pending)

    on_after_commit(session, hand_over)
