"""A PostgreSQL restart in the middle of a run loses nothing that was acknowledged.

A PostgreSQL server of the test's own (initdb in a temporary directory, a free port) serves
`custos serve` and `custos worker` processes while customers are created over HTTP; midway
the server is stopped as by a crash (`pg_ctl restart -m immediate`: no checkpoint, recovery
from the WAL). Every customer whose creation was answered 201 must exist afterwards, and its
`customer.created` event must reach the webhook receiver. The shared PostgreSQL server of the
test suite is not touched.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from custos.config import Settings
from custos.migrate import upgrade
from custos.models import Customer, Event
from custos.runtime import Runtime
from tests.factories import Factory, bearer
from tests.fault.harness import (
    ROOT,
    UNLIMITED,
    PrivatePostgres,
    Workers,
    process_env,
    receipts,
    receiver_process,
)
from tests.processes import serve_command
from tests.receiver import free_port


@pytest.fixture
def private_postgres(settings: Settings) -> Iterator[PrivatePostgres]:
    if not settings.is_postgres:
        pytest.skip("the PostgreSQL phase of the suite runs this; SQLite has no server")
    if not PrivatePostgres.available():
        pytest.skip("needs PostgreSQL 15's server binaries (initdb, pg_ctl)")
    server = PrivatePostgres().start()
    yield server
    server.stop()


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        serve_command(port),
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_acknowledged_writes_survive_a_postgres_crash_restart(
    private_postgres: PrivatePostgres,
) -> None:
    settings = Settings(
        environment="test",
        secret_key=secrets.token_urlsafe(48),
        database_url=private_postgres.url,
        password_hash_profile="fast",
        log_level="ERROR",
        **UNLIMITED,
        webhook_allowed_hosts=["127.0.0.1"],
    )
    await asyncio.to_thread(upgrade, settings)
    runtime = Runtime.build(settings)
    await runtime.start()
    tenant = await Factory(runtime).tenant()
    await runtime.stop()

    env = process_env(settings, CUSTOS_PASSWORD_HASH_PROFILE="fast")
    port = free_port()
    server = _serve(env, port)
    workers = Workers(env, 1)
    acknowledged: list[str] = []
    refused = 0
    try:
        with receiver_process() as receiver_url:
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=10) as http:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        if (await http.get("/ready")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert time.monotonic() < deadline, "the server did not start"
                    await asyncio.sleep(0.1)
                hook = await http.post(
                    "/api/v1/webhooks",
                    json={"url": f"{receiver_url}/restart", "event_types": ["customer.created"]},
                    headers=bearer(tenant.admin_key),
                )
                assert hook.status_code == 201, hook.text

                async def create(i: int) -> None:
                    nonlocal refused
                    try:
                        made = await http.post(
                            "/api/v1/customers",
                            json={"full_name": f"Restart {i}"},
                            headers=bearer(tenant.admin_key),
                        )
                    except httpx.TransportError:
                        refused += 1
                        return
                    if made.status_code == 201:
                        acknowledged.append(made.json()["id"])
                    else:
                        assert made.status_code == 503, made.text
                        refused += 1

                # Writes go on, four at a time, before, during and for 3 s after the restart.
                restart: asyncio.Task[None] | None = None
                before_restart = 0
                restarted = 0.0
                i = 0
                started = time.monotonic()
                while restart is None or not restart.done() or time.monotonic() < restarted + 3:
                    await asyncio.gather(*(create(i + k) for k in range(4)))
                    i += 4
                    if restart is None and time.monotonic() - started > 2.5:
                        before_restart = len(acknowledged)
                        restart = asyncio.create_task(
                            asyncio.to_thread(private_postgres.restart, "immediate")
                        )
                    if restart is not None and restart.done() and not restarted:
                        restart.result()
                        restarted = time.monotonic()
                    assert time.monotonic() - started < 120, "the restart took too long"
                restarted_at = restarted - started

            runtime = Runtime.build(settings)
            await runtime.start()
            try:
                async with runtime.db.transaction(tenant_id=tenant.id, write=False) as session:
                    kept = set(
                        (
                            await session.execute(
                                sa.select(Customer.id).where(Customer.id.in_(acknowledged))
                            )
                        ).scalars()
                    )
                    events = dict(
                        (
                            await session.execute(
                                sa.select(Event.subject_id, Event.id).where(
                                    Event.type == "customer.created",
                                    Event.subject_id.in_(acknowledged),
                                )
                            )
                        ).all()
                    )
            finally:
                await runtime.stop()
            assert kept == set(acknowledged), "an acknowledged customer was lost"
            assert set(events) == set(acknowledged), "an acknowledged change lost its event"
            wanted = set(events.values())
            deadline = time.monotonic() + 60
            while not wanted <= {i for i, _ in receipts(receiver_url)}:
                assert time.monotonic() < deadline, "acknowledged events were not delivered"
                await asyncio.sleep(0.5)
    finally:
        workers.stop()
        server.terminate()
        server.wait(timeout=20)
    print(
        f"{len(acknowledged)} creations acknowledged ({before_restart} before the restart,"
        f" up again at {restarted_at:.1f} s), {refused} refused while the database was away;"
        " every acknowledged one kept and delivered"
    )
    assert refused >= 1, "the restart happened while nothing was being written"
    assert len(acknowledged) > before_restart, "nothing was acknowledged after the restart"
