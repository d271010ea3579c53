"""Getting jobs run after the process running them died.

PostgreSQL: every worker sends a heartbeat (`worker_heartbeat_seconds`). Every worker also
runs `reap_stalled_jobs` on the same interval: a worker silent for longer than
`worker_stalled_after_seconds` is taken for dead (kill -9, a lost machine), and the jobs it
had started go back to the queue, where any live worker takes them.

SQLite (the embedded default): the in-memory queue dies with the process. `LocalQueue` feeds
it from `job_outbox` (worker/defer.py): the jobs committed transactions deferred, queued again
at start-up, deleted once they have run, marked failed once their retries are spent.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import procrastinate
import sqlalchemy as sa
import structlog
from procrastinate import exceptions as procrastinate_errors
from procrastinate.jobs import Job

from custos.db import Database
from custos.kit.time import utcnow
from custos.models import JobOutbox
from custos.runtime import Runtime
from custos.worker.batching import release_unreturned
from custos.worker.context import outbox_claim
from custos.worker.defer import JobRequest

log = structlog.get_logger(__name__)


# procrastinate_retry_job_v1 for many jobs in one statement (a dead worker may have held
# hundreds): back to the queue, one attempt more, failed instead if an abort was asked.
_REQUEUE = (
    "UPDATE procrastinate_jobs"
    " SET status = CASE WHEN abort_requested THEN 'failed'::procrastinate_job_status"
    "   ELSE 'todo'::procrastinate_job_status END,"
    " attempts = CASE WHEN abort_requested THEN attempts ELSE attempts + 1 END,"
    " scheduled_at = CASE WHEN abort_requested THEN scheduled_at ELSE now() END"
    " WHERE id = ANY(%(ids)s) AND status = 'doing'"
)


async def reap_stalled_jobs(job_app: procrastinate.App, stalled_after: float) -> int:
    """Queue again the jobs of workers that stopped sending heartbeats; returns how many."""
    manager = job_app.job_manager
    await manager.prune_stalled_workers(stalled_after)
    stalled = [
        job.id
        for job in await manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after)
        if job.id is not None
    ]
    if stalled:
        await job_app.connector.execute_query_async(_REQUEUE, ids=stalled)
        log.warning("stalled_jobs_requeued", count=len(stalled))
    return len(stalled)


async def reap_forever(job_app: procrastinate.App, runtime: Runtime) -> None:
    settings = runtime.settings
    while True:
        await asyncio.sleep(settings.worker_heartbeat_seconds)
        try:
            await release_unreturned(runtime)
            await reap_stalled_jobs(job_app, settings.worker_stalled_after_seconds)
        except Exception as exc:  # the database is away; the next round tries again
            log.warning("stalled_job_check_failed", error=type(exc).__name__)


class LocalQueue:
    """The embedded default's bridge between `job_outbox` and procrastinate's in-memory queue."""

    def __init__(self, db: Database, job_app: procrastinate.App) -> None:
        self.db = db
        self.job_app = job_app
        self._outbox_of: dict[int, str] = {}  # in-memory job id -> outbox row id

    async def submit(self, jobs: list[Any]) -> None:
        known = set(self._outbox_of.values())
        for request in jobs:
            assert isinstance(request, JobRequest)
            if request.id in known:
                continue
            job = Job(
                id=None,
                queue=request.queue,
                lock=request.lock,
                queueing_lock=request.queueing_lock,
                task_name=request.task_name,
                priority=request.priority,
                task_kwargs=request.args,
                scheduled_at=request.scheduled_at,
            )
            try:
                deferred = await self.job_app.job_manager.defer_job_async(job)
            except procrastinate_errors.AlreadyEnqueued:
                await self._forget(request.id)  # the queued twin does the work
                continue
            assert deferred.id is not None
            self._outbox_of[deferred.id] = request.id

    async def resume(self) -> int:
        """Queue every outbox job that has neither run nor failed for good."""
        async with self.db.transaction(system=True, write=False) as session:
            rows = (
                (await session.execute(sa.select(JobOutbox).where(JobOutbox.failed_at.is_(None))))
                .scalars()
                .all()
            )
        requests = [
            JobRequest(
                task_name=row.task_name,
                args=row.args,
                queue=row.queue_name,
                priority=row.priority,
                lock=row.lock,
                queueing_lock=row.queueing_lock,
                scheduled_at=row.scheduled_at,
                id=row.id,
            )
            for row in rows
        ]
        await self.submit(requests)
        if requests:
            log.info("outbox_jobs_resumed", count=len(requests))
        return len(requests)

    async def middleware(
        self,
        call_next: Callable[[], Awaitable[Any]],
        context: procrastinate.JobContext,
        worker: Any,  # noqa: ARG002 (procrastinate's middleware signature)
    ) -> Any:
        job_id = context.job.id
        outbox_id = self._outbox_of.get(job_id) if job_id is not None else None
        token = outbox_claim.set(f"outbox:{outbox_id}" if outbox_id else None)
        try:
            result = await call_next()
        except (asyncio.CancelledError, procrastinate_errors.JobAborted):
            raise  # shutting down: the row stays and the job runs at the next start
        except Exception as exc:
            task = context.app.tasks.get(context.job.task_name)
            will_retry = task is not None and task.get_retry_exception(
                exception=exc, job=context.job
            )
            if outbox_id is not None and not will_retry:
                await self._fail(outbox_id, exc)
                self._outbox_of.pop(job_id, None)  # type: ignore[arg-type]
            raise
        finally:
            outbox_claim.reset(token)
        if outbox_id is not None:
            await self._forget(outbox_id)
            self._outbox_of.pop(job_id, None)  # type: ignore[arg-type]
        return result

    async def _forget(self, outbox_id: str) -> None:
        async with self.db.transaction(system=True) as session:
            await session.execute(sa.delete(JobOutbox).where(JobOutbox.id == outbox_id))

    async def _fail(self, outbox_id: str, exc: Exception) -> None:
        with contextlib.suppress(Exception):
            async with self.db.transaction(system=True) as session:
                await session.execute(
                    sa.update(JobOutbox)
                    .where(JobOutbox.id == outbox_id)
                    .values(failed_at=utcnow(), error=f"{type(exc).__name__}: {exc}"[:500])
                )


_LOCAL_QUEUES: weakref.WeakKeyDictionary[procrastinate.App, LocalQueue] = (
    weakref.WeakKeyDictionary()
)


def local_queue(db: Database, job_app: procrastinate.App) -> LocalQueue:
    """The one LocalQueue of an in-memory App: it knows which outbox rows it already holds."""
    found = _LOCAL_QUEUES.get(job_app)
    if found is None:
        found = _LOCAL_QUEUES[job_app] = LocalQueue(db, job_app)
    return found
