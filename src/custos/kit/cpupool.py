"""CPU-heavy pure work shared with helper processes: a second core works on it, and the
event loop is not held for the whole of it.

A feedback call of 1,000 items spends about half its time in pure functions of the text
(VADER's sentiment, the shingle fingerprint). `split_map(fn, items, workers)` sends all
but one share of the items to `workers` helper processes and works the last share itself,
in slices with a turn for the event loop between them, then returns every result in
order. With no helpers (`workers=0`), or when the helpers cannot be reached (one was
killed), everything runs in the process itself: never an error for the caller, since the
functions are pure and the work is the same.

Helpers are forked by a fork server started once per process (no threads or event loops
are inherited, unlike a plain fork from a running server): at start-up (`warm_up`, from
`runtime.settled_process` once an API or worker process is up; stopped with it), or else
at the first call. `fn` must be a module-level function; its module is preloaded in the
fork server, and so is the main module (as multiprocessing does by default), so a script
that starts the pool needs its `if __name__ == "__main__"` guard. A helper exits by itself
when the process that started it is gone, even killed.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import select
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

import structlog

from custos.kit.gcpause import gc_paused

log = structlog.get_logger(__name__)

X = TypeVar("X")
Y = TypeVar("Y")

# Items between two turns of the event loop in the local share.
SLICE = 64
# Fewer items than this are not worth a helper's round trip (pickling both ways).
MIN_SHARED = 64

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_pool_workers = 0


def _executor(workers: int, preload: str) -> ProcessPoolExecutor:
    global _pool, _pool_workers
    with _lock:
        if _pool is None or _pool_workers != workers:
            if _pool is not None:
                _pool.shutdown(wait=False, cancel_futures=True)
            context = multiprocessing.get_context("forkserver")
            # The fork server imports the main module once: forked from it, helpers skip
            # running it again (seconds for a server's whole import graph).
            context.set_forkserver_preload(["__main__", preload])
            _pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=context,
                initializer=_end_with,
                initargs=(os.getpid(),),
            )
            _pool_workers = workers
        return _pool


def warm_up(workers: int, prime: Callable[[], object]) -> None:
    """Start the fork server and the helpers now, in the background (at process start),
    each running `prime` (loading what its work needs), so the first call that needs them
    does not wait. `prime`'s module is the one preloaded."""
    if workers <= 0:
        return
    try:
        pool = _executor(workers, prime.__module__)
        for _ in range(workers):
            pool.submit(prime)
    except (BrokenProcessPool, RuntimeError, OSError) as exc:
        log.warning("cpu_pool_unavailable", error=type(exc).__name__)


def _end_with(owner: int) -> None:
    """In a helper: exit when the process that started the pool is gone, however it went.
    Killed, it cannot shut the pool down, and a helper waiting for work would wait for
    ever (and keep its fork server alive)."""

    def watch() -> None:
        try:
            handle = os.pidfd_open(owner)
        except OSError:  # gone already, or no pidfd on this system: poll
            handle = None
        while True:
            if handle is not None:
                select.select([handle], [], [])  # readable once the process has ended
                os._exit(0)
            time.sleep(1.0)
            try:
                os.kill(owner, 0)
            except ProcessLookupError:
                os._exit(0)

    threading.Thread(target=watch, name="custos-owner-watch", daemon=True).start()


def _discard(pool: ProcessPoolExecutor) -> None:
    """A broken pool is replaced at the next call."""
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None
    pool.shutdown(wait=False, cancel_futures=True)


def shutdown() -> None:
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_all(fn: Callable[[X], Y], items: Sequence[X]) -> list[Y]:
    # Pure work makes no cycles worth collecting, and a helper's heap is the whole import
    # graph, which a full collection would walk (kit/gcpause.py). So does the local share.
    with gc_paused():
        return [fn(item) for item in items]


async def _local(fn: Callable[[X], Y], items: Sequence[X]) -> list[Y]:
    results: list[Y] = []
    for start in range(0, len(items), SLICE):
        if start:
            await asyncio.sleep(0)
        # Paused for a slice, not across the turns the event loop gets between them.
        with gc_paused():
            results.extend(fn(item) for item in items[start : start + SLICE])
    return results


async def split_map(fn: Callable[[X], Y], items: Sequence[X], workers: int) -> list[Y]:
    """`[fn(x) for x in items]`, shared between this process and `workers` helpers."""
    if workers <= 0 or len(items) < MIN_SHARED * 2:
        return await _local(fn, items)
    share = -(-len(items) // (workers + 1))
    parts = [items[start : start + share] for start in range(0, len(items), share)]
    own, sent = parts[-1], parts[:-1]
    try:
        pool = _executor(workers, fn.__module__)
        loop = asyncio.get_running_loop()
        futures = [loop.run_in_executor(pool, _run_all, fn, part) for part in sent]
    except (BrokenProcessPool, RuntimeError, OSError) as exc:
        log.warning("cpu_pool_unavailable", error=type(exc).__name__)
        return await _local(fn, items)
    mine = await _local(fn, own)
    results: list[Y] = []
    for part, future in zip(sent, futures, strict=True):
        try:
            results.extend(await future)
        except BrokenProcessPool as exc:
            log.warning("cpu_pool_broken", error=type(exc).__name__)
            _discard(pool)
            results.extend(await _local(fn, part))
    return results + mine
