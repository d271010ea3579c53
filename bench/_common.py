"""Helpers shared by the benchmarks: a throw-away database, a server subprocess, wrk.

Benchmarks import this as a sibling module (`from _common import ...`): they are run as
scripts, `python bench/<name>.py`, which puts bench/ first on sys.path.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

from custos.api_key import service as key_service
from custos.api_key.schemas import ApiKeyCreate
from custos.config import RATE_LIMIT_SETTINGS, Settings
from custos.runtime import Runtime
from custos.tenant import service as tenant_service
from custos.tenant.schemas import TenantCreate

HOST = "127.0.0.1"  # benchmarks only ever bind and drive the loopback interface
WRK_INSTALL_HINT = (
    "install it with: apt-get update && apt-get install -y wrk (macOS: brew install wrk)"
)

# Printed by the Lua `done` hook, so figures come from wrk's own histogram, not its text.
_WRK_MARKER = "WRK_RESULT "
_WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests": %d, "duration_us": %d, "p50_us": %.1f, "p95_us": %.1f, '
    .. '"p99_us": %.1f, "max_us": %.1f, "status_errors": %d, "connect_errors": %d, '
    .. '"read_errors": %d, "write_errors": %d, "timeouts": %d}\\n',
    "MARKER", summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(95), latency:percentile(99), latency.max, e.status, e.connect, e.read,
    e.write, e.timeout))
end
""".replace("MARKER", _WRK_MARKER)


class BenchError(RuntimeError):
    """Something broke: the benchmark cannot produce trustworthy figures."""


# -- statistics ------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (q in 0..100)."""
    if not ordered:
        raise ValueError("no samples")
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[middle])
    return (ordered[middle - 1] + ordered[middle]) / 2


# -- process hygiene -------------------------------------------------------------------------


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so `finally` blocks stop servers and drop databases."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def die_with_parent() -> None:
    """In a server subprocess: stop when the benchmark that started it is gone, even if it
    was killed with SIGKILL and had no chance to clean up."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# -- database --------------------------------------------------------------------------------


UNREACHABLE_LIMIT = "1000000000/minute"
# Settings a server subprocess is given from the benchmark's Settings, besides the above.
_PASSED_ON = (
    "rate_limits_enabled",
    "usage_metering_enabled",
    "cache_enabled",
    *RATE_LIMIT_SETTINGS,
)


def bench_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings as the test suite makes them, with a secret generated for this run."""
    values: dict[str, Any] = {
        "environment": "test",
        "secret_key": secrets.token_urlsafe(48),
        "database_url": database_url,
        "redis_url": os.environ.get("REDIS_URL") or None,
        "password_hash_profile": "fast",
        "log_level": "WARNING",
        # Limits on (their cost is part of every figure) but far above any load we drive:
        # a 429 is not a measurement.
        **dict.fromkeys(RATE_LIMIT_SETTINGS, UNREACHABLE_LIMIT),
    }
    values.update(overrides)
    return Settings(**values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes Settings() in a subprocess equal to `settings` (for the
    fields bench_settings sets; anything else both processes read from the same environment)."""
    env = dict(os.environ)
    for name in ("REDIS_URL", "CUSTOS_REDIS_URL", "CUSTOS_DATABASE_URL", "CUSTOS_CONFIG"):
        env.pop(name, None)
    env.update(
        {
            "DATABASE_URL": settings.database_url,
            "CUSTOS_SECRET_KEY": settings.secret_key.get_secret_value(),
            "CUSTOS_ENVIRONMENT": settings.environment,
            "CUSTOS_PASSWORD_HASH_PROFILE": settings.password_hash_profile,
            "CUSTOS_LOG_LEVEL": settings.log_level,
            **{f"CUSTOS_{name.upper()}": str(getattr(settings, name)) for name in _PASSED_ON},
        }
    )
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    return env


async def new_tenant_and_key(
    runtime: Runtime, scopes: list[str], *, rate_limits: dict[str, int] | None = None
) -> tuple[str, str]:
    """A tenant and an API key of it (id, secret), made through the services as the API
    would."""
    slug = f"bench-{secrets.token_hex(4)}"
    async with runtime.db.transaction(system=True) as session:
        tenant = await tenant_service.create(
            runtime, session, None, TenantCreate(name=f"Bench {slug}", slug=slug)
        )
    body = ApiKeyCreate.model_validate(
        {"name": "bench", "scopes": scopes, "rate_limits": rate_limits}
    )
    async with runtime.db.transaction(system=True) as session:
        issued = await key_service.create(runtime, session, None, tenant.id, body)
    return tenant.id, issued.secret


# -- HTTP ------------------------------------------------------------------------------------

# No proxies: an http_proxy variable in the environment must not reroute loopback requests.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 2.0) -> int:
    """The status code of a GET, errors included (a 401 is an answer, not an exception)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with _opener.open(request, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code


def http_request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 5.0,
) -> tuple[int, bytes]:
    """Status code and body of any request, errors included."""
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with _opener.open(request, timeout=timeout) as response:
            status: int = response.status
            return status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: IO[bytes]

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        self.log.flush()
        self.log.seek(0)
        return "\n".join(self.log.read().decode(errors="replace").splitlines()[-lines:])


@contextmanager
def server_process(
    argv: list[str],
    env: dict[str, str],
    port: int,
    ready_path: str = "/health",
    *,
    reap_group: bool = False,
) -> Iterator[Server]:
    """Start `argv` (which must serve HTTP on 127.0.0.1:port), wait until `ready_path`
    answers 200, and stop it on the way out, whatever happened. With `reap_group`, also
    kill whatever is left of its process group afterwards: a server that forks workers
    (uvicorn --workers) must not leave one behind if its supervisor had to be killed."""
    with tempfile.TemporaryFile(prefix="bench-server-") as log:
        # Its own session: a Ctrl-C reaches only us, and we stop the server in order.
        process = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        server = Server(process, port, log)
        try:
            _wait_ready(server, ready_path, timeout=30.0)
            yield server
        finally:
            _stop(process)
            if reap_group:
                _kill_group(process.pid)


def _wait_ready(server: Server, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(
                f"the server exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        with suppress(OSError):
            if http_get(server.base_url + path, timeout=1.0) == 200:
                return
        time.sleep(0.1)
    raise BenchError(f"the server was not ready within {timeout:.0f}s:\n{server.log_tail()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _kill_group(pgid: int) -> None:
    """SIGKILL what is left of a process group that one of our servers leads."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def process_tree_cpu_seconds(root: int) -> float | None:
    """User + system CPU time of `root` and all its descendants, from /proc (Linux); None
    where /proc is not there. A server's CPU per request is steadier than its requests/s
    on a machine others are using too."""
    proc = Path("/proc")
    if not (proc / str(root) / "stat").exists():
        return None
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # After the command name in parentheses: state, ppid, ... utime (14th), stime (15th).
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        ticks[pid] = int(fields[11]) + int(fields[12])
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return sum(ticks.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(
    pid: int, *, quiet_seconds: float = 1.0, max_cpu_share: float = 0.05, timeout: float = 30.0
) -> bool:
    """Wait until `pid` and its descendants use less than `max_cpu_share` of one CPU over
    `quiet_seconds`: a server whose workers are still importing and starting up answers its
    first requests before all of them are ready. False if it never settled within `timeout`
    (or /proc is not there, in which case this only waits `quiet_seconds`)."""
    deadline = time.monotonic() + timeout
    before = process_tree_cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet_seconds)
        after = process_tree_cpu_seconds(pid)
        if before is None or after is None:
            return False
        if after - before < max_cpu_share * quiet_seconds:
            return True
        before = after
    return False


# -- wrk -------------------------------------------------------------------------------------


def require_wrk() -> str:
    """wrk's path; exits with status 2 and install instructions when it is missing."""
    path = shutil.which("wrk")
    if path is None:
        print(
            f"error: this benchmark needs wrk, which is not on PATH; {WRK_INSTALL_HINT}",
            file=sys.stderr,
        )
        sys.exit(2)
    return path


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    p50_us: float
    p95_us: float
    p99_us: float
    max_us: float
    status_errors: int  # responses with status >= 400
    socket_errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


@contextmanager
def wrk_script(lua: str = "") -> Iterator[str]:
    """A wrk script file: `lua` (setup/init/request hooks, if any) then the reporting hook."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-wrk-") as script:
        script.write(lua + "\n" + _WRK_SCRIPT)
        script.flush()
        yield script.name


def run_wrk(
    wrk: str,
    script: str,
    url: str,
    *,
    seconds: float,
    connections: int,
    threads: int = 1,
    headers: dict[str, str] | None = None,
) -> WrkResult:
    if not url.startswith(f"http://{HOST}:"):
        raise BenchError(f"refusing to load anything but {HOST}: {url}")
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "5s",
        "-s",
        script,
    ]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(url)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith(_WRK_MARKER)), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line[len(_WRK_MARKER) :])
    return WrkResult(
        requests=data["requests"],
        duration_s=data["duration_us"] / 1e6,
        p50_us=data["p50_us"],
        p95_us=data["p95_us"],
        p99_us=data["p99_us"],
        max_us=data["max_us"],
        status_errors=data["status_errors"],
        socket_errors=sum(
            data[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
        ),
    )
