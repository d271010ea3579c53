from __future__ import annotations

from contextvars import ContextVar

import procrastinate

from custos.runtime import Runtime


def runtime_of(context: procrastinate.JobContext) -> Runtime:
    """Jobs reach the process's Runtime through the worker's additional context."""
    runtime: Runtime = context.additional_context["runtime"]
    return runtime


def claim_of(job_id: int | None) -> str:
    """A token naming a job, the same when it runs again after its worker died: rows it
    claims are left alone by other jobs and taken back by itself."""
    return f"job:{job_id}"


# Set while a job from the SQLite outbox runs: its outbox id outlives the in-memory queue's
# job ids, which start again at 1 in every process.
outbox_claim: ContextVar[str | None] = ContextVar("outbox_claim", default=None)


def job_claim(context: procrastinate.JobContext) -> str:
    return outbox_claim.get() or claim_of(context.job.id)
