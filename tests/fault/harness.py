"""Pieces the fault scripts share: `custos worker` processes that can be killed and started
again, a receiver process, a private PostgreSQL server that can be restarted, and an event
producer."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from custos import events
from custos.config import RATE_LIMIT_SETTINGS, Settings
from custos.event import service as event_log
from custos.runtime import Runtime
from custos.webhook import service as webhook_service
from custos.webhook.schemas import WebhookCreate
from tests.receiver import free_port

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# Fault runs write far faster than a tenant plan allows; rate limits have their own tests.
UNLIMITED = dict.fromkeys(RATE_LIMIT_SETTINGS, "10000000/minute")


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTOS_")}
    env.pop("REDIS_URL", None)
    env.update(
        {
            "DATABASE_URL": settings.database_url,
            "CUSTOS_SECRET_KEY": settings.secret_key.get_secret_value(),
            "CUSTOS_ENVIRONMENT": "test",
            "CUSTOS_LOG_LEVEL": "ERROR",
            "CUSTOS_PASSWORD_HASH_PROFILE": "fast",
            "CUSTOS_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
            # Quick recovery from the kills, still well above a busy worker's heartbeat gaps.
            "CUSTOS_WORKER_HEARTBEAT_SECONDS": "1",
            "CUSTOS_WORKER_STALLED_AFTER_SECONDS": "5",
            "PYTHONPATH": str(ROOT),
        }
    )
    # The limits the settings hold (the suite's are far above what it sends).
    for name in RATE_LIMIT_SETTINGS:
        env[f"CUSTOS_{name.upper()}"] = str(getattr(settings, name))
    env.update(extra)
    return env


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return found


class Workers:
    """`count` worker processes; `kill_one()` sends SIGKILL to one of them, at random.

    supervised (default): one `custos worker --processes count`; the killed worker process
    is replaced by its supervisor, as in production. Otherwise: `count` separate
    `custos worker` processes, and the killed one is started again from cold (seconds of
    imports) by this harness."""

    def __init__(
        self,
        env: dict[str, str],
        count: int,
        log: IO[bytes] | None = None,
        *,
        supervised: bool = True,
    ) -> None:
        self.env = env
        self.log = log
        self.count = count
        self.supervised = supervised
        self.processes = (
            [self._start(count)] if supervised else [self._start(1) for _ in range(count)]
        )
        self.kills = 0
        self.kill_times: list[float] = []

    def _start(self, processes: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from custos.cli import main; main()",
                "worker",
                "--processes",
                str(processes),
            ],
            env=self.env,
            stdout=self.log or subprocess.DEVNULL,
            stderr=self.log or subprocess.DEVNULL,
            cwd=ROOT,
        )

    def worker_pids(self) -> list[int]:
        return [pid for p in self.processes for pid in children_of(p.pid)]

    def kill_one(self, rng: random.Random) -> None:
        if self.supervised:
            pids = self.worker_pids()
            if not pids:
                return
            with suppress(ProcessLookupError):
                os.kill(rng.choice(pids), signal.SIGKILL)
            self.kills += 1
            self.kill_times.append(time.time())
            return
        index = rng.randrange(len(self.processes))
        victim = self.processes[index]
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        self.kills += 1
        self.kill_times.append(time.time())
        self.processes[index] = self._start(1)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


async def keep_killing(workers: Workers, stop: asyncio.Event, rng: random.Random) -> None:
    """SIGKILL a worker every 0.5 to 1.5 s (and start it again) until told to stop."""
    while not stop.is_set():
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=rng.uniform(0.5, 1.5))
        if not stop.is_set():
            await asyncio.to_thread(workers.kill_one, rng)


@contextmanager
def receiver_process() -> Iterator[str]:
    """The counting receiver in its own process; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.receiver", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                receipts(url)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the receiver did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def receipts(url: str) -> list[tuple[str, float]]:
    with _opener.open(f"{url}/_receipts", timeout=30) as response:
        found: list[tuple[str, float]] = [tuple(r) for r in json.loads(response.read())]
        return found


async def subscribe(runtime: Runtime, tenant_id: str, url: str, **fields: Any) -> str:
    from custos.auth.principal import Principal, PrincipalKind

    actor = Principal(
        kind=PrincipalKind.system,
        id="fault-harness",
        tenant_id=tenant_id,
        scopes=frozenset({"webhooks:write"}),
    )
    async with runtime.db.transaction(tenant_id=tenant_id) as session:
        issued = await webhook_service.create(
            runtime, session, actor, WebhookCreate(url=url, **fields)
        )
    return issued.endpoint.id


async def produce(
    runtime: Runtime,
    tenant_id: str,
    total: int,
    rng: random.Random,
    *,
    producers: int = 4,
    commit_times: dict[str, float] | None = None,
    per_second: float | None = None,
    batch: int | None = None,
) -> list[str]:
    """`total` events in transactions of `batch` (default: 1 to 5 at random), from
    `producers` concurrent writers."""
    made: list[str] = []
    lock = asyncio.Lock()
    started = time.monotonic()

    async def writer() -> None:
        while True:
            async with lock:
                left = total - len(made)
                if left <= 0:
                    return
                size = min(batch or rng.randint(1, 5), left)
                made.extend([""] * size)  # reserve
            if per_second:
                # Spread the writes evenly over time, for latency measurements.
                await asyncio.sleep(max(0.0, started + len(made) / per_second - time.monotonic()))
            ids = []
            async with runtime.db.transaction(tenant_id=tenant_id) as session:
                for _ in range(size):
                    ids.append(
                        event_log.emit(
                            session,
                            None,
                            events.EVENT_TEST,
                            {"message": "fault harness"},
                            tenant_id=tenant_id,
                            test=True,
                        )
                    )
            committed = time.time()
            async with lock:
                for event_id in ids:
                    made[made.index("")] = event_id
                    if commit_times is not None:
                        commit_times[event_id] = committed

    await asyncio.gather(*(writer() for _ in range(producers)))
    return made


class PrivatePostgres:
    """A PostgreSQL 15 server of our own on a free port, in a temporary directory: it can be
    restarted without disturbing anybody else's. Runs as the `postgres` OS user when the
    tests run as root (initdb refuses root)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="custos-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self._as_root = os.geteuid() == 0

    @staticmethod
    def available() -> bool:
        return (PG_BIN / "initdb").exists() and (
            os.geteuid() != 0 or shutil.which("runuser") is not None
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        command = [str(PG_BIN / argv[0]), *argv[1:]]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> PrivatePostgres:
        if self._as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self._pg_ctl("start")
        return self

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            action,
            *extra,
        )

    def restart(self, mode: str = "immediate") -> None:
        """`immediate` is a crash: no checkpoint, recovery from the WAL on start."""
        self._pg_ctl("restart", "-m", mode)

    def stop(self) -> None:
        with suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._pg_ctl("stop", "-m", "fast")
        shutil.rmtree(self.dir, ignore_errors=True)
