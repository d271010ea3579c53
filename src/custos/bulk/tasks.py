"""Bulk jobs: running an operation, and finding the ones nobody is running.

The durable state is the operation's row (status, checkpoint, lease), not the job: a job
that is lost or stalled costs nothing but time, because the recovery sweep defers the
operation again and claiming it is idempotent.
"""

from __future__ import annotations

import procrastinate
import structlog
from procrastinate.exceptions import AlreadyEnqueued

from custos.bulk import runner
from custos.runtime import Runtime
from custos.worker.context import runtime_of

log = structlog.get_logger(__name__)


async def defer(jobs: procrastinate.App, operation_id: str) -> None:
    try:
        await jobs.configure_task("bulk.run", queueing_lock=f"bulk:{operation_id}").defer_async(
            operation_id=operation_id
        )
    except AlreadyEnqueued:
        pass  # a job for it is already waiting
    except Exception as exc:  # the sweep will defer it again
        log.warning("bulk_defer_failed", operation_id=operation_id, error=type(exc).__name__)


async def recover(runtime: Runtime, jobs: procrastinate.App) -> int:
    async def again(operation_id: str) -> None:
        await defer(jobs, operation_id)

    count = await runner.recover(runtime, again)
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
        return await recover(runtime_of(context), jobs)
