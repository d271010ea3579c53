"""Housekeeping for the queue itself: jobs that failed for good are kept a while, then go."""

from __future__ import annotations

from datetime import timedelta

import procrastinate
import sqlalchemy as sa

from custos.kit.time import utcnow
from custos.models import JobOutbox
from custos.runtime import Runtime
from custos.worker.context import runtime_of


async def prune_failed_jobs(runtime: Runtime, job_app: procrastinate.App) -> None:
    days = runtime.settings.worker_failed_job_retention_days
    if runtime.db.is_postgres:
        await job_app.job_manager.delete_old_jobs(
            nb_hours=days * 24, include_failed=True, include_cancelled=True, include_aborted=True
        )
        return
    async with runtime.db.transaction(system=True) as session:
        await session.execute(
            sa.delete(JobOutbox).where(JobOutbox.failed_at < utcnow() - timedelta(days=days))
        )


def register(jobs: procrastinate.App) -> None:
    @jobs.periodic(cron="41 3 * * *", periodic_id="daily")
    @jobs.task(name="worker.prune_failed_jobs", pass_context=True, queue="maintenance")
    async def prune_failed_jobs_job(
        context: procrastinate.JobContext,
        timestamp: int,  # noqa: ARG001 (procrastinate passes the schedule time by this name)
    ) -> None:
        await prune_failed_jobs(runtime_of(context), context.app)
