"""Sealing audit rows that a process wrote but did not live to seal."""

from __future__ import annotations

import procrastinate

from custos.audit.sealing import seal_all
from custos.worker.context import runtime_of


def register(jobs: procrastinate.App) -> None:
    @jobs.periodic(cron="* * * * *", periodic_id="every-minute")
    @jobs.task(name="audit.seal", pass_context=True, queue="maintenance")
    async def seal_audit_job(
        context: procrastinate.JobContext,
        timestamp: int,  # noqa: ARG001 (procrastinate passes the schedule time by this name)
    ) -> int:
        return await seal_all(runtime_of(context).db)
