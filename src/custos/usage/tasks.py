"""Usage housekeeping: minute rows become day rows after the raw retention."""

from __future__ import annotations

import procrastinate

from custos.usage.service import roll_up
from custos.worker.context import runtime_of


def register(jobs: procrastinate.App) -> None:
    @jobs.periodic(cron="41 * * * *", periodic_id="hourly")
    @jobs.task(name="usage.roll_up", pass_context=True, queue="maintenance")
    async def roll_up_job(
        context: procrastinate.JobContext,
        timestamp: int,  # noqa: ARG001 (procrastinate passes the schedule time by this name)
    ) -> dict[str, int]:
        runtime = runtime_of(context)
        return await roll_up(runtime.db, runtime.settings)
