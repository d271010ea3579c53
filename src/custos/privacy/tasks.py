"""Erasure jobs: every minute, the erasures whose grace period is over (and any a worker
left half-way); right away, one scheduled with `immediate`."""

from __future__ import annotations

import procrastinate

from custos.privacy import erasure
from custos.worker.context import runtime_of

ERASE_DUE = "privacy.erase_due"


def register(jobs: procrastinate.App) -> None:
    @jobs.periodic(cron="* * * * *", periodic_id="every-minute")
    @jobs.task(name=ERASE_DUE, pass_context=True, queue="maintenance")
    async def erase_due_job(
        context: procrastinate.JobContext,
        timestamp: int,  # noqa: ARG001 (procrastinate passes the schedule time by this name)
    ) -> int:
        return await erasure.run_due(runtime_of(context))

    @jobs.task(name="privacy.erase", pass_context=True, queue="default", retry=3)
    async def erase_job(context: procrastinate.JobContext, tenant_id: str, request_id: str) -> int:
        return await erasure.run(runtime_of(context), tenant_id, request_id)
