"""The job queue: procrastinate on PostgreSQL in production, its in-memory connector in-process
on the embedded default. Feature packages declare their jobs in `tasks.py` with a
`register(app)` function, listed in TASK_MODULES.

What every job gets, whichever feature defers it (docs/ARCHITECTURE.md, "Background jobs"):
deferral in the caller's transaction (worker/defer.py), retries with backoff
(worker/retry.py), periodic scheduling (procrastinate's `periodic`), recovery of the jobs of a
worker that died (worker/recovery.py), and on SQLite re-queueing at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import procrastinate
import procrastinate.worker
import sqlalchemy as sa
import structlog
from procrastinate.testing import InMemoryConnector
from sqlalchemy.engine import make_url

from custos.audit import tasks as audit_tasks
from custos.auth import tasks as auth_tasks
from custos.bulk import tasks as bulk_tasks
from custos.config import Settings
from custos.customer import tasks as customer_tasks
from custos.event import outbox
from custos.event import tasks as event_tasks
from custos.kit.time import utcnow
from custos.privacy import tasks as privacy_tasks
from custos.runtime import Runtime, settled_process
from custos.usage import tasks as usage_tasks
from custos.webhook import tasks as webhook_tasks
from custos.worker import tasks as worker_tasks
from custos.worker.recovery import LocalQueue, local_queue, reap_forever, reap_stalled_jobs
from custos.worker.supervisor import WorkerLink

log = structlog.get_logger(__name__)

QUEUES = ("default", "maintenance")
SQLITE_JOB_CONCURRENCY = 2
# Periodic tasks that resume unfinished work from our tables, run once at in-process start.
STARTUP_TASKS = (privacy_tasks.ERASE_DUE,)

TASK_MODULES: tuple[Callable[[procrastinate.App], None], ...] = (
    auth_tasks.register,
    audit_tasks.register,
    bulk_tasks.register,
    customer_tasks.register,
    event_tasks.register,
    privacy_tasks.register,
    usage_tasks.register,
    webhook_tasks.register,
    worker_tasks.register,
)


def _conninfo(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_job_app(settings: Settings) -> procrastinate.App:
    connector: procrastinate.BaseConnector
    if settings.is_postgres:
        # Heartbeats, fetches and finishes share this pool: too small a pool under many
        # concurrent jobs delays heartbeats until the worker looks dead to the others.
        connector = procrastinate.PsycopgConnector(
            conninfo=_conninfo(settings.database_url),
            min_size=1,
            max_size=min(settings.worker_concurrency, 16) + 4,
        )
    else:
        connector = InMemoryConnector()
    app = procrastinate.App(connector=connector)
    for register in TASK_MODULES:
        register(app)
    return app


def worker_options(
    runtime: Runtime, local: LocalQueue | None, *, concurrency: int, queues: list[str] | None
) -> dict[str, Any]:
    settings = runtime.settings
    return {
        "queues": queues or list(QUEUES),
        "concurrency": concurrency,
        "additional_context": {"runtime": runtime},
        "update_heartbeat_interval": settings.worker_heartbeat_seconds,
        "stalled_worker_timeout": settings.worker_stalled_after_seconds,
        # Finished jobs leave the queue table at once; failed ones stay for inspection
        # (and are pruned after worker_failed_job_retention_days).
        "delete_jobs": "successful",
        "worker_middleware": [local.middleware] if local is not None else [],
    }


@dataclass(frozen=True, slots=True)
class QueueStats:
    pending: int
    running: int
    oldest_pending_at: datetime | None
    failed: int


async def queue_stats(runtime: Runtime, job_app: procrastinate.App) -> QueueStats:
    if not runtime.db.is_postgres:
        connector = job_app.connector
        jobs: list[dict[str, Any]] = list(getattr(connector, "jobs", {}).values())
        events: dict[int, list[dict[str, Any]]] = getattr(connector, "events", {})
        pending = [j for j in jobs if j["status"] == "todo"]
        deferred_at = [
            e["at"] for j in pending for e in events.get(j["id"], []) if e["type"] == "deferred"
        ]
        return QueueStats(
            pending=len(pending),
            running=sum(1 for j in jobs if j["status"] == "doing"),
            oldest_pending_at=min(deferred_at, default=None),
            failed=sum(1 for j in jobs if j["status"] == "failed"),
        )
    async with runtime.db.engine.connect() as conn:
        row = (
            await conn.execute(
                sa.text(
                    "SELECT count(*) FILTER (WHERE j.status = 'todo'),"
                    " count(*) FILTER (WHERE j.status = 'doing'),"
                    " min(e.at) FILTER (WHERE j.status = 'todo'),"
                    " count(*) FILTER (WHERE j.status = 'failed')"
                    " FROM procrastinate_jobs j"
                    " LEFT JOIN procrastinate_events e"
                    "   ON e.job_id = j.id AND e.type = 'deferred'"
                    " WHERE j.status IN ('todo', 'doing', 'failed')"
                )
            )
        ).one()
    # Rows of the event outbox are dispatch jobs about to be made: pending too.
    waiting, waiting_since = await outbox.waiting(runtime.db)
    oldest = min((t for t in (row[2], waiting_since) if t is not None), default=None)
    return QueueStats(
        pending=row[0] + waiting, running=row[1], oldest_pending_at=oldest, failed=row[3]
    )


class InProcessWorker:
    """Jobs run inside the API process: the embedded default, or `jobs_in_process`."""

    def __init__(self, runtime: Runtime, job_app: procrastinate.App) -> None:
        self.runtime = runtime
        self.job_app = job_app
        self.local = None if runtime.db.is_postgres else local_queue(runtime.db, job_app)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.job_app.open_async()
        if self.local is not None:
            self.runtime.db.job_sink = self.local
            await self.local.resume()
        else:
            self._tasks.append(asyncio.create_task(reap_forever(self.job_app, self.runtime)))
            self._tasks.append(asyncio.create_task(_move_events_forever(self.runtime)))
        settings = self.runtime.settings
        options = worker_options(
            self.runtime,
            self.local,
            # SQLite has one writer at a time: more jobs at once only queue on its lock,
            # each holding a pooled connection the API's requests need.
            concurrency=settings.worker_concurrency
            if self.runtime.db.is_postgres
            else min(settings.worker_concurrency, SQLITE_JOB_CONCURRENCY),
            queues=None,
        )
        self._tasks.append(
            asyncio.create_task(
                self.job_app.run_worker_async(install_signal_handlers=False, **options),
                name="custos-jobs",
            )
        )
        # Durable work a previous process left unfinished (bulk operations) runs again.
        await bulk_tasks.recover(self.runtime)
        # The in-memory queue died with the last process: work whose durable state is in
        # our own tables (erasures) is taken up again now, not only at the next minute.
        for task in STARTUP_TASKS:
            with contextlib.suppress(Exception):
                await self.job_app.configure_task(task).defer_async(timestamp=0)

    async def stop(self) -> None:
        self.runtime.db.job_sink = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.job_app.close_async()


async def _move_events_forever(runtime: Runtime) -> None:
    await outbox.move_forever(runtime.db, runtime.settings.worker_event_poll_seconds)


async def due_jobs(runtime: Runtime, job_app: procrastinate.App) -> int:
    """How many queued jobs could run now."""
    if not runtime.db.is_postgres:
        jobs: dict[int, dict[str, Any]] = getattr(job_app.connector, "jobs", {})
        now = utcnow()
        return sum(
            1
            for j in jobs.values()
            if j["status"] == "todo" and (j["scheduled_at"] is None or j["scheduled_at"] <= now)
        )
    async with runtime.db.engine.connect() as conn:
        found = await conn.execute(
            sa.text(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'"
                " AND (scheduled_at IS NULL OR scheduled_at <= now())"
            )
        )
        due = int(found.scalar_one())
    # Events in the outbox are dispatch jobs about to be made.
    waiting, _ = await outbox.waiting(runtime.db)
    return due + waiting


async def run_until_idle(
    runtime: Runtime, job_app: procrastinate.App, *, max_rounds: int = 20
) -> None:
    """Run every job that is due now, and the jobs those defer, then return (tests, and
    maintenance commands). Jobs scheduled for later stay queued."""
    local = None if runtime.db.is_postgres else local_queue(runtime.db, job_app)
    if local is not None:
        previous, runtime.db.job_sink = runtime.db.job_sink, local
    try:
        if local is not None:
            await local.resume()
        for _ in range(max_rounds):
            if local is None:
                await outbox.move_all(runtime.db)
            await job_app.run_worker_async(
                wait=False,
                install_signal_handlers=False,
                listen_notify=False,
                **worker_options(runtime, local, concurrency=4, queues=None),
            )
            if not await due_jobs(runtime, job_app):
                return
    finally:
        if local is not None:
            runtime.db.job_sink = previous


async def _take_over(runtime: Runtime, job_app: procrastinate.App, dead: list[int]) -> None:
    """Queue again at once the jobs of workers known to be dead (a sibling process)."""
    async with runtime.db.engine.begin() as conn:
        await conn.execute(
            sa.text("DELETE FROM procrastinate_workers WHERE id = ANY(:ids)"), {"ids": dead}
        )
    await reap_stalled_jobs(job_app, runtime.settings.worker_stalled_after_seconds)


async def _report_when_registered(worker: procrastinate.worker.Worker, link: WorkerLink) -> None:
    while worker.worker_id is None:
        await asyncio.sleep(0.05)
    link.report(worker.worker_id)


async def run_worker(
    runtime: Runtime,
    *,
    concurrency: int,
    queues: list[str] | None,
    link: WorkerLink | None = None,
) -> None:
    """`custos worker`: one process of any number, on any machine sharing the database.

    Survives the database going away (a restart, a failover): the worker is started again,
    with growing pauses, until it can reach the database; SIGTERM or SIGINT stop it.
    """
    job_app = create_job_app(runtime.settings)
    job_app.perform_import_paths()  # type: ignore[no-untyped-call]
    with settled_process(runtime.settings):
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        current: asyncio.Task[None] | None = None

        def stop() -> None:
            stopping.set()
            if current is not None:
                current.cancel()  # procrastinate then stops gracefully, finishing running jobs

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        pause = 1.0
        options = worker_options(runtime, None, concurrency=concurrency, queues=queues)
        log.info("worker_started", queues=options["queues"], concurrency=concurrency)
        while not stopping.is_set():
            reaper: asyncio.Task[None] | None = None
            mover: asyncio.Task[None] | None = None
            reporter: asyncio.Task[None] | None = None
            try:
                async with job_app.open_async():
                    # The connections its first jobs will want (webhook answers are recorded on
                    # several at once), so they are not opened while those jobs run.
                    settings = runtime.settings
                    await runtime.db.warm_up(
                        min(
                            concurrency + settings.webhook_concurrency_per_host,
                            settings.db_pool_size,
                        )
                    )
                    if link is not None and link.dead_workers:
                        await _take_over(runtime, job_app, link.dead_workers)
                        link.dead_workers = []
                    # Bulk operations whose worker died under their lease run again.
                    await bulk_tasks.recover(runtime)
                    reaper = asyncio.create_task(reap_forever(job_app, runtime))
                    mover = asyncio.create_task(_move_events_forever(runtime))
                    # procrastinate's own run_worker_async, with the worker at hand to report
                    # its id to the supervisor.
                    worker = job_app._worker(install_signal_handlers=False, **options)
                    if link is not None:
                        reporter = asyncio.create_task(_report_when_registered(worker, link))
                    current = asyncio.create_task(worker.run())  # type: ignore[no-untyped-call]
                    await current
                    pause = 1.0
            except asyncio.CancelledError:
                if not stopping.is_set():
                    raise
            except Exception as exc:
                log.warning("worker_restarting", error=type(exc).__name__, pause_seconds=pause)
            finally:
                if reporter is not None:
                    reporter.cancel()
                for helper in (reaper, mover):
                    if helper is not None:
                        helper.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await helper
            if not stopping.is_set():
                # The worker stopped without being asked (its database connection was lost).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=pause)
                pause = min(pause * 2, 30.0)
    log.info("worker_stopped")
