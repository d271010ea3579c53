"""Jobs of the event log: dispatching committed events, and publishing them again."""

from __future__ import annotations

import asyncio
import weakref
from contextlib import AsyncExitStack

import procrastinate

from custos.db import Database
from custos.event.dispatch import Work, hand_out, plan, publish_again
from custos.runtime import Runtime
from custos.worker.batching import taking_more
from custos.worker.context import claim_of, job_claim, runtime_of
from custos.worker.retry import DURABLE, ScheduleRetry

# A dispatch job takes up to this many queued ones with it (worker/batching.py), once fewer
# than DISPATCH_BACKLOG of this process's messages wait for a turn to be sent (or after
# DISPATCH_WAIT seconds: a slow receiver delays other tenants' dispatch, never stops it).
DISPATCH_BATCH = 20
DISPATCH_BACKLOG = 100
DISPATCH_WAIT = 1.0

# Like webhook deliveries: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
PUBLISH_RETRY = ScheduleRetry([5, 300, 1800, 7200, 18_000, 36_000, 36_000])


def register(jobs: procrastinate.App) -> None:
    @jobs.task(name="events.dispatch", pass_context=True, retry=DURABLE)
    async def dispatch_job(
        context: procrastinate.JobContext, tenant_id: str, event_ids: list[str]
    ) -> None:
        runtime = runtime_of(context)
        async with AsyncExitStack() as taken:
            # One dispatch of the process plans at a time, and only once its messages are
            # mostly sent: jobs it could not send soon stay queued for other workers (and
            # are not run again after a crash), and planning (the CPU-heavy part) does not
            # hold up the recording of answers.
            async with planning_turn(runtime):
                await runtime.webhooks.fewer_queued_than(DISPATCH_BACKLOG, DISPATCH_WAIT)
                more = await taken.enter_async_context(
                    taking_more(runtime, context, DISPATCH_BATCH)
                )
                work = [Work(job_claim(context), tenant_id, event_ids)]
                work += [
                    Work(claim_of(job.id), job.args["tenant_id"], job.args["event_ids"])
                    for job in more
                ]
                planned = await plan(runtime, work)
            await hand_out(runtime, planned)

    @jobs.task(name="events.publish", pass_context=True, retry=PUBLISH_RETRY)
    async def publish_job(
        context: procrastinate.JobContext, tenant_id: str, event_ids: list[str]
    ) -> None:
        await publish_again(runtime_of(context), tenant_id, event_ids)


_PLANNING: weakref.WeakKeyDictionary[Database, asyncio.Lock] = weakref.WeakKeyDictionary()


def planning_turn(runtime: Runtime) -> asyncio.Lock:
    """The process's one turn to plan dispatches (one per database, which is one per
    Runtime)."""
    found = _PLANNING.get(runtime.db)
    if found is None:
        found = _PLANNING[runtime.db] = asyncio.Lock()
    return found
