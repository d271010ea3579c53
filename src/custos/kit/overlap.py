"""Doing CPU work while a database statement is under way.

A coroutine that awaits a query leaves this process idle while the server works, then
keeps the server idle while it computes. Where the computation does not depend on the
answer, both can run at once: the statement goes out as a task, and the work runs in
slices with the event loop let in between, so the statement is sent and its answer read
without waiting for the whole computation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
X = TypeVar("X")
Y = TypeVar("Y")

SLICE = 100


async def while_waiting(
    statement: Awaitable[T], work: Callable[[X], Y], items: Sequence[X], *, size: int = SLICE
) -> tuple[T, list[Y]]:
    """`await statement` and `[work(x) for x in items]`, at the same time. If the work
    fails, the statement still ends by itself before the error goes on: a statement is
    never cancelled halfway (kit/periodic.py says why)."""
    task = asyncio.ensure_future(statement)
    results: list[Y] = []
    try:
        for start in range(0, len(items), size):
            await asyncio.sleep(0)  # the statement goes out, or its answer comes in
            results.extend(work(item) for item in items[start : start + size])
    except BaseException:
        await let_finish(task)
        raise
    return await task, results


async def let_finish(task: asyncio.Future[Any]) -> None:
    """Wait for a statement's task to end by itself, whatever it ends with (its error is
    not this caller's to raise, and is marked seen): after another failure, never cancel
    it halfway (kit/periodic.py says why). If this wait is itself cancelled, the task
    still ends by itself."""
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    with contextlib.suppress(BaseException):
        await asyncio.shield(task)
