"""Real processes for the tests: Custos servers (uvicorn) and a private redis-server.

Tests that kill or flush Redis start their own on a free port and stop it afterwards; the
shared one is never touched."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from custos.config import RATE_LIMIT_SETTINGS, Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def server_env(settings: Settings, **overrides: str) -> dict[str, str]:
    """The environment that gives a server process the test run's settings."""
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url or "",
        "CUSTOS_SECRET_KEY": settings.secret_key.get_secret_value(),
        "CUSTOS_ENVIRONMENT": "test",
        "CUSTOS_PASSWORD_HASH_PROFILE": "fast",
        "CUSTOS_LOG_LEVEL": "WARNING",
    }
    for name in RATE_LIMIT_SETTINGS:
        env[f"CUSTOS_{name.upper()}"] = str(getattr(settings, name))
    env.pop("CUSTOS_REDIS_URL", None)
    env.update(overrides)
    return env


def serve_command(port: int, *extra: str) -> list[str]:
    """The command of one uvicorn process serving Custos on 127.0.0.1."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "custos.app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        *extra,
    ]


@contextmanager
def custos_servers(env: dict[str, str], count: int = 2) -> Iterator[list[str]]:
    """`count` uvicorn processes serving Custos; yields their base URLs. On the way out each
    gets SIGTERM and must shut down gracefully within 15 s."""
    ports = [free_port() for _ in range(count)]
    with contextlib.ExitStack() as files:
        errors = [files.enter_context(tempfile.TemporaryFile()) for _ in ports]
        processes = [
            subprocess.Popen(
                serve_command(port, "--timeout-graceful-shutdown", "5"),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
            for port, stderr in zip(ports, errors, strict=True)
        ]
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        try:
            deadline = time.monotonic() + 30
            for url in urls:
                while not _ready(url):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{url} did not start")
                    time.sleep(0.1)
            yield urls
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
                    raise AssertionError(
                        "a server did not shut down within 15 s of SIGTERM"
                    ) from None
            for stderr in errors:
                stderr.seek(0)
                said = stderr.read().decode(errors="replace")
                # Helper processes and their queues are released at shutdown (runtime.py).
                assert "leaked" not in said, said[-2000:]


def wait_ready(url: str, timeout: float = 10.0) -> None:
    """Until the server's /ready answers 200 (its database connections are good)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} is not ready")
        time.sleep(0.1)


def _ready(url: str) -> bool:
    try:
        answer: Any = httpx.get(f"{url}/health/detailed", timeout=1).json()
        return bool(answer["components"]["auth_cache"]["status"] == "ok")
    except (httpx.HTTPError, KeyError, ValueError):
        return False


class RedisServer:
    """A redis-server of our own, without persistence, that a test may kill and restart."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("needs redis-server on PATH to start a Redis of its own")
        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="custos-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused server must die too
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=5)
        self.process = None

    def pause(self) -> None:
        """Unresponsive but alive, data kept: as a network partition looks to a client."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def command(self, *words: str) -> bytes:
        """One command over a raw socket (inline protocol), e.g. FLUSHALL."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(" ".join(words).encode() + b"\r\n")
            return s.recv(65536)


@contextmanager
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.kill()
        shutil.rmtree(server.dir, ignore_errors=True)
