"""Jobs of the event log: dispatching committed events, and publishing them again."""

from __future__ import annotations

import procrastinate

from custos.event.dispatch import Work, dispatch, publish_again
from custos.worker.batching import taking_more
from custos.worker.context import claim_of, job_claim, runtime_of
from custos.worker.retry import DURABLE, ScheduleRetry

# A dispatch job takes up to this many queued ones with it (worker/batching.py).
DISPATCH_BATCH = 20

# Like webhook deliveries: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
PUBLISH_RETRY = ScheduleRetry([5, 300, 1800, 7200, 18_000, 36_000, 36_000])


def register(jobs: procrastinate.App) -> None:
    @jobs.task(name="events.dispatch", pass_context=True, retry=DURABLE)
    async def dispatch_job(
        context: procrastinate.JobContext, tenant_id: str, event_ids: list[str]
    ) -> None:
        runtime = runtime_of(context)
        async with taking_more(runtime, context, DISPATCH_BATCH) as more:
            work = [Work(job_claim(context), tenant_id, event_ids)]
            work += [
                Work(claim_of(job.id), job.args["tenant_id"], job.args["event_ids"]) for job in more
            ]
            await dispatch(runtime, work)

    @jobs.task(name="events.publish", pass_context=True, retry=PUBLISH_RETRY)
    async def publish_job(
        context: procrastinate.JobContext, tenant_id: str, event_ids: list[str]
    ) -> None:
        await publish_again(runtime_of(context), tenant_id, event_ids)
