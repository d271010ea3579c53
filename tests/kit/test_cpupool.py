"""kit/cpupool.py: pure work shared with helper processes gives exactly what doing it
here gives, in order; a helper that dies costs the caller nothing but time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from custos.feedback.analysis import analyse
from custos.kit import cpupool


def square_and_pid(n: int) -> tuple[int, int]:
    return n * n, os.getpid()


@pytest.fixture(autouse=True)
def _fresh_pool() -> object:
    cpupool.shutdown()
    yield
    cpupool.shutdown()


async def test_results_come_back_in_order_from_every_share() -> None:
    items = list(range(1_000))
    for workers in (0, 1, 2):
        done = await cpupool.split_map(square_and_pid, items, workers)
        assert [value for value, _ in done] == [n * n for n in items]
        pids = {pid for _, pid in done}
        assert os.getpid() in pids  # this process worked its own share
        # Helpers took the others (one helper may take two shares, if it is quick).
        assert 2 <= len(pids) <= workers + 1 if workers else pids == {os.getpid()}


async def test_a_small_call_stays_in_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pool(*_args: object) -> None:
        raise AssertionError("a helper was asked")

    monkeypatch.setattr(cpupool, "_executor", no_pool)
    done = await cpupool.split_map(square_and_pid, list(range(cpupool.MIN_SHARED)), 2)
    assert {pid for _, pid in done} == {os.getpid()}


async def test_a_killed_helper_costs_nothing_but_time() -> None:
    items = list(range(600))
    await cpupool.split_map(square_and_pid, items, 1)  # the pool is up
    pool = cpupool._executor(1, __name__)
    for pid in list(pool._processes):  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGKILL)
    after_kill = await cpupool.split_map(square_and_pid, items, 1)
    assert [value for value, _ in after_kill] == [n * n for n in items]
    # The broken pool was replaced: helpers work again.
    again = await cpupool.split_map(square_and_pid, items, 1)
    assert [value for value, _ in again] == [n * n for n in items]
    assert len({pid for _, pid in again}) == 2


async def test_feedback_analysis_is_the_same_in_a_helper() -> None:
    texts = [
        (f"The delivery was {word} and the support {mood}", customer)
        for word in ("late", "great", "fine", "awful", "quick")
        for mood in ("helped", "ignored me", "was rude", "was kind")
        for customer in (None, "cus_1", "cus_2")
    ] * 4
    shared = await cpupool.split_map(analyse, texts, 1)
    assert shared == [analyse(text) for text in texts]


def test_helpers_end_when_their_process_is_killed(tmp_path: Path) -> None:
    """A server killed with SIGKILL cannot shut its pool down: its helpers (and their fork
    server) must go by themselves."""
    script = tmp_path / "owner.py"
    # Guarded: the fork server imports the main module (kit/cpupool.py says why).
    script.write_text(
        "import time\n"
        "from custos.feedback.analysis import prime\n"
        "from custos.kit import cpupool\n"
        "if __name__ == '__main__':\n"
        "    cpupool.warm_up(2, prime)\n"
        "    pool = cpupool._executor(2, prime.__module__)\n"
        "    while len(pool._processes) < 2:\n"
        "        time.sleep(0.05)\n"
        "    print(*pool._processes, flush=True)\n"
        "    time.sleep(60)\n"
    )
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        helpers = [int(pid) for pid in owner.stdout.readline().split()]
        assert len(helpers) == 2
        assert all(_alive(pid) for pid in helpers)
    finally:
        owner.kill()
        owner.wait()
        owner.stdout.close()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in helpers):
        assert time.monotonic() < deadline, "a helper outlived its killed process"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A helper that ended is reaped by its fork server, which may itself be ending.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"
