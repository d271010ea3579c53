"""Bulk jobs: running an operation, and finding the ones nobody is running.

The durable state is the operation's row (status, checkpoint, lease), not the job: a job
that is lost or stalled costs nothing but time, because the recovery sweep defers the
operation again and claiming it is idempotent.
"""

from __future__ import annotations

import procrastinate
import structlog

from custos.bulk import runner
from custos.runtime import Runtime
from custos.worker.context import runtime_of

log = structlog.get_logger(__name__)


async def recover(runtime: Runtime) -> int:
    count = await runner.recover(runtime)
    if count:
        log.info("bulk_operations_redeferred", count=count)
    return count


def register(jobs: procrastinate.App) -> None:
    @jobs.task(name="bulk.run", pass_context=True, queue="default")
    async def run_operation(context: procrastinate.JobContext, operation_id: str) -> str | None:
        return await runner.run(runtime_of(context), operation_id)

    @jobs.periodic(cron="* * * * *", periodic_id="every-minute")
    @jobs.task(name="bulk.recover", pass_context=True, queue="maintenance")
    async def recover_operations(
        context: procrastinate.JobContext,
        timestamp: int,  # noqa: ARG001 (procrastinate passes the schedule time by this name)
    ) -> int:
        return await recover(runtime_of(context))
