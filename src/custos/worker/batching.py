"""Taking more queued jobs of the same kind into the job that is running (PostgreSQL).

A burst of small jobs (one `events.dispatch` per committed transaction) costs a fetch, a
finish and a round of work each. A task that can do many at once calls `taking_more`: it
marks up to `limit` more queued jobs of its own task as running on the same worker, exactly
as procrastinate's fetch would (`status = 'doing'`, the worker's id), so a worker killed
meanwhile has them queued again by the stalled-job recovery like any other. When the work
succeeds they are deleted (as finished jobs are); when it fails they go back to the queue.

On the embedded default (the in-memory queue) nothing is taken: each job runs on its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import procrastinate
import sqlalchemy as sa
import structlog

from custos.runtime import Runtime

log = structlog.get_logger(__name__)

# The CTE form procrastinate's own fetch uses, and the status checked again on the row
# updated: with `WHERE id IN (subquery)` a row another worker took meanwhile could be
# updated anyway (the recheck after a lock wait does not re-run the subquery's conditions).
_TAKE = sa.text(
    "WITH picked AS (SELECT id FROM procrastinate_jobs"
    "   WHERE status = 'todo' AND task_name = :task AND queue_name = :queue"
    "     AND lock IS NULL AND (scheduled_at IS NULL OR scheduled_at <= now())"
    "   ORDER BY priority DESC, id LIMIT :limit FOR UPDATE SKIP LOCKED)"
    " UPDATE procrastinate_jobs AS jobs SET status = 'doing', worker_id = :worker"
    " FROM picked WHERE jobs.id = picked.id AND jobs.status = 'todo'"
    " RETURNING jobs.id, jobs.args"
)
_FINISH = sa.text(
    "DELETE FROM procrastinate_jobs"
    " WHERE id = ANY(:ids) AND status = 'doing' AND worker_id = :worker"
)
_RELEASE = sa.text(
    "UPDATE procrastinate_jobs SET status = 'todo', worker_id = NULL"
    " WHERE id = ANY(:ids) AND status = 'doing' AND worker_id = :worker"
)
# Jobs this process took and could not hand back (the database was away): retried by the
# stalled-job loop, so they never stay `doing` under a live worker.
_UNRETURNED: dict[int, int] = {}


@dataclass(frozen=True, slots=True)
class TakenJob:
    id: int
    args: dict[str, Any]


@asynccontextmanager
async def taking_more(
    runtime: Runtime, context: procrastinate.JobContext, limit: int
) -> AsyncIterator[list[TakenJob]]:
    job = context.job
    if not runtime.db.is_postgres or job.worker_id is None or limit <= 0:
        yield []
        return
    async with runtime.db.engine.begin() as conn:
        rows = await conn.execute(
            _TAKE,
            {"worker": job.worker_id, "task": job.task_name, "queue": job.queue, "limit": limit},
        )
        taken = [TakenJob(int(row.id), dict(row.args)) for row in rows]
    if not taken:
        yield []
        return
    ids = [t.id for t in taken]
    try:
        yield taken
    except BaseException:
        await _hand_back(runtime, _RELEASE, ids, job.worker_id)
        raise
    await _hand_back(runtime, _FINISH, ids, job.worker_id)


async def _hand_back(
    runtime: Runtime, statement: sa.TextClause, ids: list[int], worker: int
) -> None:
    try:
        async with runtime.db.engine.begin() as conn:
            await conn.execute(statement, {"ids": ids, "worker": worker})
    except Exception as exc:
        log.warning("taken_jobs_not_returned", count=len(ids), error=type(exc).__name__)
        # Released later: queued again, they are run again (handlers are idempotent).
        _UNRETURNED.update(dict.fromkeys(ids, worker))


async def release_unreturned(runtime: Runtime) -> None:
    if not _UNRETURNED:
        return
    pending = dict(_UNRETURNED)
    by_worker: dict[int, list[int]] = {}
    for job_id, worker in pending.items():
        by_worker.setdefault(worker, []).append(job_id)
    async with runtime.db.engine.begin() as conn:
        for worker, ids in by_worker.items():
            await conn.execute(_RELEASE, {"ids": ids, "worker": worker})
    for job_id in pending:
        _UNRETURNED.pop(job_id, None)
