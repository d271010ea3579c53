"""kit/overlap.py: work done while a statement is under way."""

from __future__ import annotations

import asyncio
import time

import pytest

from custos.kit.overlap import while_waiting


async def test_the_work_runs_while_the_statement_waits() -> None:
    events: list[str] = []

    async def statement() -> str:
        events.append("sent")
        await asyncio.sleep(0.02)  # the server's time
        events.append("answered")
        return "rows"

    def work(item: int) -> int:
        if item == 0:
            events.append("work started")
        time.sleep(0.0002)  # 300 items: at least 60 ms of work
        if item == 299:
            events.append("work finished")
        return item * 2

    answer, results = await while_waiting(statement(), work, list(range(300)), size=10)
    assert answer == "rows"
    assert results == [i * 2 for i in range(300)]
    # Sent before the work began, answered (and read) before it ended.
    assert events == ["sent", "work started", "answered", "work finished"]


async def test_failing_work_lets_the_statement_finish_first() -> None:
    finished = asyncio.Event()

    async def statement() -> None:
        await asyncio.sleep(0.02)
        finished.set()

    def work(item: int) -> int:
        if item == 150:
            raise ValueError("bad item")
        return item

    with pytest.raises(ValueError, match="bad item"):
        await while_waiting(statement(), work, list(range(300)))
    assert finished.is_set()


async def test_a_failing_statement_fails_the_call_after_the_work() -> None:
    done: list[int] = []

    async def statement() -> None:
        raise RuntimeError("the database refused it")

    def work(item: int) -> int:
        done.append(item)
        return item

    with pytest.raises(RuntimeError, match="refused"):
        await while_waiting(statement(), work, list(range(250)))
    assert done == list(range(250))  # the work was not cut off by the statement's error
