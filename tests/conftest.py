"""Test harness: a fresh database built by the migrations, real Redis when configured.

The backend follows the environment, as in production: DATABASE_URL naming PostgreSQL runs
the suite there (in a new database, dropped afterwards); otherwise a SQLite file. REDIS_URL
turns on Redis for credential-cache broadcasts and throttling; without it, in-process memory.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from custos.app import create_app
from custos.config import RATE_LIMIT_SETTINGS, Settings
from custos.kit.scratch import throwaway_database
from custos.migrate import upgrade
from custos.runtime import Runtime
from custos.worker.app import run_until_idle
from tests.audit_check import AuditInvariant
from tests.factories import Factory
from tests.processes import custos_servers, server_env, wait_ready
from tests.receiver import Receiver

BASE_URL = "http://custos.test"


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with throwaway_database("custos-test") as url:
        yield url


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "secret_key": "test-secret-" + "x" * 40,
        "database_url": database_url,
        "redis_url": os.environ.get("REDIS_URL") or None,
        "password_hash_profile": "fast",
        # The suite signs in and calls often from one address. Every limit stays on (so
        # every response carries the headers) but far above what the suite sends; throttling
        # and rate limits have their own tests with tight ones.
        **dict.fromkeys(RATE_LIMIT_SETTINGS, "10000000/minute"),
        "log_level": "WARNING",
        # Import sources and export files of the run, shared with worker subprocesses.
        "bulk_storage_dir": os.path.join(tempfile.gettempdir(), "custos-test-files"),
        # Test receivers listen on 127.0.0.1; every other private address stays refused.
        "webhook_allowed_hosts": ["127.0.0.1"],
        "webhook_timeout_seconds": 3,
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def runtime_with(database_url: str, **overrides: Any) -> AsyncIterator[Runtime]:
    """A started Runtime with settings of its own (tight limits, another Redis, ...)."""
    runtime = Runtime.build(make_settings(database_url, **overrides))
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


@asynccontextmanager
async def own_database(name: str) -> AsyncIterator[Settings]:
    """Settings for a database of the test's own, at the head revision as `custos migrate`
    leaves it: for tests that migrate it further, with nothing else writing."""
    with throwaway_database(name) as url:
        own = make_settings(url)
        await asyncio.to_thread(upgrade, own)
        yield own


@asynccontextmanager
async def api_client(settings: Settings, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The API of a runtime of the test's own, called in process."""
    transport = httpx.ASGITransport(app=create_app(settings, runtime))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield client


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    settings = make_settings(database_url)
    upgrade(settings)
    return settings


@pytest.fixture(scope="session")
def uses_postgres(settings: Settings) -> bool:
    return settings.is_postgres


@pytest.fixture(scope="session")
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime.build(settings)
    await runtime.start()
    yield runtime
    await runtime.stop()


@pytest.fixture(scope="session")
def app(settings: Settings, runtime: Runtime) -> Any:
    return create_app(settings, runtime)


@pytest.fixture(scope="session")
async def audit_invariant(runtime: Runtime) -> AuditInvariant:
    return AuditInvariant(runtime)


@pytest.fixture
async def client(app: Any, audit_invariant: AuditInvariant) -> AsyncIterator[httpx.AsyncClient]:
    """Sequential requests only: every successful write must add exactly one audit row."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url=BASE_URL,
        event_hooks={"request": [audit_invariant.before], "response": [audit_invariant.after]},
    ) as client:
        yield client


@pytest.fixture
async def raw_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """For concurrent requests and no-op writes, where the audit count check cannot apply."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL
    ) as client:
        yield client


@pytest.fixture
def factory(runtime: Runtime) -> Factory:
    return Factory(runtime)


@pytest.fixture(scope="session")
def two_servers(settings: Settings) -> Iterator[list[str]]:
    """Two real server processes sharing PostgreSQL and Redis, as in production (several
    processes on one SQLite file are not a configuration Custos supports). Writes meant to
    reach their caches must go through them."""
    if not (settings.is_postgres and settings.redis_url):
        pytest.skip("several processes need the production configuration: PostgreSQL + Redis")
    with custos_servers(server_env(settings)) as urls:
        yield urls


@pytest.fixture
def servers(two_servers: list[str]) -> list[str]:
    """The two server processes, each ready: a test that ends the database's sessions (as a
    restart would) leaves their pools to find that out on their next request."""
    for url in two_servers:
        wait_ready(url)
    return two_servers


@pytest.fixture(scope="session")
def receiver_server() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def receiver(receiver_server: Receiver) -> Receiver:
    """A real HTTP server on 127.0.0.1 recording what it receives; 204 unless scripted."""
    receiver_server.reset()
    return receiver_server


@pytest.fixture
def run_jobs(app: Any, runtime: Runtime) -> Callable[[], Awaitable[None]]:
    """Run every job due now (deferred by committed transactions), as a worker would."""

    async def run() -> None:
        job_app = app.state.job_app
        async with job_app.open_async():
            await run_until_idle(runtime, job_app)

    return run


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if AuditInvariant.writes_checked:
        terminalreporter.write_line(
            f"audit invariant: {AuditInvariant.writes_checked} successful writes each added "
            f"exactly one audit row; {AuditInvariant.reads_checked} reads added none"
        )
