"""Retrying failed jobs on a schedule, with jitter, on procrastinate's retry mechanism.

A task registered with `retry=ScheduleRetry(...)` that raises is run again after the next
delay of the schedule (each +/- `jitter` of itself, so jobs that failed together do not come
back together), until the schedule is spent; then the job is `failed` and stays in the queue
for inspection. Raise `RetryLater(seconds)` to choose the delay (a Retry-After), or
`PermanentFailure` to give up at once.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta

from procrastinate.jobs import Job
from procrastinate.retry import BaseRetryStrategy, RetryDecision

from custos.kit.time import utcnow


class RetryLater(Exception):
    def __init__(self, seconds: float, message: str = "") -> None:
        super().__init__(message or f"retry in {seconds:.0f} s")
        self.seconds = seconds


class PermanentFailure(Exception):
    """The job cannot succeed by being run again."""


def backoff_delay(schedule: Sequence[float], attempt: int, jitter: float) -> float | None:
    """The delay before try number `attempt + 1` (attempt 0 failed first), or None when the
    schedule is spent."""
    if attempt >= len(schedule):
        return None
    base = schedule[attempt]
    return base * random.uniform(1 - jitter, 1 + jitter)


class ScheduleRetry(BaseRetryStrategy):
    def __init__(self, delays: Sequence[float], *, jitter: float = 0.2) -> None:
        self.delays = tuple(delays)
        self.jitter = jitter

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if isinstance(exception, PermanentFailure):
            return None
        delay = backoff_delay(self.delays, job.attempts, self.jitter)
        if delay is None:
            return None
        if isinstance(exception, RetryLater):
            delay = exception.seconds
        return RetryDecision(retry_at=utcnow() + timedelta(seconds=delay))


# For jobs whose work must not be lost (event dispatch, publishing, deliveries): quick tries
# for passing trouble (a restarting database), then longer waits, for about a day.
DURABLE = ScheduleRetry([1, 5, 15, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600])
