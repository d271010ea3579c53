"""`custos worker`'s process layout: a supervisor that has imported everything forks the
worker processes, and replaces one that dies (a crash, the OOM killer, kill -9) at once:
a fork is ready in milliseconds, a cold start takes seconds of imports.

The supervisor opens no connection and runs no event loop, so forking is safe. SIGTERM or
SIGINT to it is passed to the workers, which finish their running jobs and stop. If the
supervisor itself is killed, the kernel kills its workers (PR_SET_PDEATHSIG on Linux), and
their jobs are recovered like any dead worker's (worker/recovery.py).

Each worker reports its procrastinate worker id through a pipe. When one dies, its
replacement is told that id, removes that worker's registration and queues its jobs again
at once, instead of everyone waiting `worker_stalled_after_seconds` for missed heartbeats.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

import structlog

log = structlog.get_logger(__name__)

_PR_SET_PDEATHSIG = 1
# A worker that dies this soon after starting, again and again, is restarted more slowly.
QUICK_DEATH_SECONDS = 2.0
MAX_PAUSE_SECONDS = 30.0


@dataclass
class WorkerLink:
    """What a forked worker knows of its supervisor."""

    report_fd: int | None = None
    # procrastinate ids of workers that died and whose jobs this one should queue again.
    dead_workers: list[int] = field(default_factory=list)

    def report(self, worker_id: int) -> None:
        if self.report_fd is not None:
            with contextlib.suppress(OSError):
                os.write(self.report_fd, f"{os.getpid()} {worker_id}\n".encode())


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _spawn(target: Callable[[WorkerLink], None], link: WorkerLink) -> int:
    pid = os.fork()
    if pid == 0:  # the worker
        _die_with_parent()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        code = 0
        try:
            target(link)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            log.exception("worker_crashed")
            code = 1
        finally:
            os._exit(code)
    return pid


def supervise(processes: int, target: Callable[[WorkerLink], None]) -> None:
    """Run `target` in `processes` forked workers until told to stop."""
    stopping = False
    read_fd, write_fd = os.pipe()
    reported: dict[int, int] = {}  # process id -> procrastinate worker id

    def listen() -> None:
        with os.fdopen(read_fd, "rb") as reports:
            for line in reports:
                with contextlib.suppress(ValueError):
                    pid, worker_id = (int(part) for part in line.split())
                    reported[pid] = worker_id

    threading.Thread(target=listen, name="worker-reports", daemon=True).start()

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    children: dict[int, float] = {}
    # Dead workers each live worker was asked to take over: a worker that dies before it
    # has reported (it reports after taking over) passes them on to its replacement.
    inherited: dict[int, list[int]] = {}
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(processes):
        children[_spawn(target, WorkerLink(write_fd))] = time.monotonic()
    pause = 0.0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        started = children.pop(pid, None)
        handed = inherited.pop(pid, [])
        time.sleep(0.02)  # lets the report thread read what the worker wrote before dying
        if stopping or started is None:
            continue
        lived = time.monotonic() - started
        killed = os.WIFSIGNALED(status)
        log.warning(
            "worker_process_died",
            pid=pid,
            signal=os.WTERMSIG(status) if killed else None,
            exit_code=os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            lived_seconds=round(lived, 1),
        )
        # Killed from outside: back at once. Failing by itself right after starting (no
        # database, say): a growing pause, so a crash loop does not spin.
        failing = not killed and lived < QUICK_DEATH_SECONDS
        pause = min(max(pause * 2, 0.5), MAX_PAUSE_SECONDS) if failing else 0.0
        deadline = time.monotonic() + pause
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.1)
        if not stopping:
            dead = [reported.pop(pid)] if pid in reported else handed
            child = _spawn(target, WorkerLink(write_fd, dead))
            children[child] = time.monotonic()
            inherited[child] = dead
