"""The job queue: procrastinate on PostgreSQL in production, its in-memory connector in-process
on the embedded default. Feature packages declare jobs in `tasks.py` blueprints."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import procrastinate
import sqlalchemy as sa
import structlog
from procrastinate.testing import InMemoryConnector
from sqlalchemy.engine import make_url

from custos.audit import tasks as audit_tasks
from custos.auth import tasks as auth_tasks
from custos.bulk import tasks as bulk_tasks
from custos.config import Settings
from custos.customer import tasks as customer_tasks
from custos.privacy import tasks as privacy_tasks
from custos.runtime import Runtime
from custos.usage import tasks as usage_tasks

log = structlog.get_logger(__name__)

QUEUES = ("default", "maintenance")
# Periodic tasks that resume unfinished work from our tables, run once at in-process start.
STARTUP_TASKS = (privacy_tasks.ERASE_DUE,)


def _conninfo(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_job_app(settings: Settings) -> procrastinate.App:
    connector: procrastinate.BaseConnector
    if settings.is_postgres:
        connector = procrastinate.PsycopgConnector(
            conninfo=_conninfo(settings.database_url), min_size=1, max_size=4
        )
    else:
        connector = InMemoryConnector()
    app = procrastinate.App(connector=connector)
    for register in (
        auth_tasks.register,
        audit_tasks.register,
        customer_tasks.register,
        bulk_tasks.register,
        privacy_tasks.register,
        usage_tasks.register,
    ):
        register(app)
    return app


@dataclass(frozen=True, slots=True)
class QueueStats:
    pending: int
    running: int
    oldest_pending_at: datetime | None


async def queue_stats(runtime: Runtime, job_app: procrastinate.App) -> QueueStats:
    if not runtime.db.is_postgres:
        jobs: list[dict[str, Any]] = list(getattr(job_app.connector, "jobs", {}).values())
        pending = [j for j in jobs if j["status"] == "todo"]
        return QueueStats(
            pending=len(pending),
            running=sum(1 for j in jobs if j["status"] == "doing"),
            oldest_pending_at=None,
        )
    async with runtime.db.engine.connect() as conn:
        row = (
            await conn.execute(
                sa.text(
                    "SELECT count(*) FILTER (WHERE j.status = 'todo'),"
                    " count(*) FILTER (WHERE j.status = 'doing'),"
                    " min(e.at) FILTER (WHERE j.status = 'todo')"
                    " FROM procrastinate_jobs j"
                    " LEFT JOIN procrastinate_events e"
                    "   ON e.job_id = j.id AND e.type = 'deferred'"
                    " WHERE j.status IN ('todo', 'doing')"
                )
            )
        ).one()
    return QueueStats(pending=row[0], running=row[1], oldest_pending_at=row[2])


class InProcessWorker:
    """The embedded default's worker: the same jobs, run inside the API process."""

    def __init__(self, runtime: Runtime, job_app: procrastinate.App) -> None:
        self.runtime = runtime
        self.job_app = job_app
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.job_app.open_async()
        self._task = asyncio.create_task(
            self.job_app.run_worker_async(
                queues=list(QUEUES),
                install_signal_handlers=False,
                additional_context={"runtime": self.runtime},
                update_heartbeat_interval=10,
            ),
            name="custos-jobs",
        )
        # Durable work a previous process left unfinished (bulk operations) runs again.
        await bulk_tasks.recover(self.runtime, self.job_app)
        # The in-memory queue died with the last process: work whose durable state is in
        # our own tables (erasures) is taken up again now, not only at the next minute.
        for task in STARTUP_TASKS:
            with contextlib.suppress(Exception):
                await self.job_app.configure_task(task).defer_async(timestamp=0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.job_app.close_async()


async def run_worker(runtime: Runtime, *, concurrency: int, queues: list[str] | None) -> None:
    """`custos worker`: one process of any number, on any machine sharing the database."""
    job_app = create_job_app(runtime.settings)
    async with job_app.open_async():
        log.info("worker_started", queues=queues or list(QUEUES), concurrency=concurrency)
        await bulk_tasks.recover(runtime, job_app)
        await job_app.run_worker_async(
            queues=queues or list(QUEUES),
            concurrency=concurrency,
            additional_context={"runtime": runtime},
            install_signal_handlers=True,
        )
