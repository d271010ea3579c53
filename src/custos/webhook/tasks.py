"""Jobs of webhook delivery: sending (and retrying), replays, and the overdue sweep."""

from __future__ import annotations

from datetime import datetime

import procrastinate

from custos.webhook import delivery
from custos.worker.context import job_claim, runtime_of
from custos.worker.retry import DURABLE


def register(jobs: procrastinate.App) -> None:
    # A delivery's own retries follow the webhook schedule and are recorded per attempt;
    # DURABLE covers the job failing as a whole (the database away, say).
    @jobs.task(name="webhooks.deliver", pass_context=True, retry=DURABLE)
    async def deliver_job(
        context: procrastinate.JobContext, tenant_id: str, delivery_ids: list[str]
    ) -> None:
        await delivery.deliver(runtime_of(context), tenant_id, delivery_ids, job_claim(context))

    @jobs.task(name="webhooks.replay", pass_context=True, retry=DURABLE)
    async def replay_job(
        context: procrastinate.JobContext,
        tenant_id: str,
        endpoint_id: str,
        replay_id: str,
        since: str,
        until: str,
        event_types: list[str],
    ) -> int:
        return await delivery.replay(
            runtime_of(context),
            tenant_id,
            endpoint_id,
            replay_id,
            datetime.fromisoformat(since),
            datetime.fromisoformat(until),
            event_types,
        )

    @jobs.periodic(cron="*/5 * * * *", periodic_id="every-5-minutes")
    @jobs.task(name="webhooks.sweep", pass_context=True, queue="maintenance")
    async def sweep_job(
        context: procrastinate.JobContext,
        timestamp: int,  # noqa: ARG001 (procrastinate passes the schedule time by this name)
    ) -> int:
        return await delivery.sweep(runtime_of(context))
