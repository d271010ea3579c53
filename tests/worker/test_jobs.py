from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa

from custos.app import create_app
from custos.auth.tasks import purge_ended_sessions
from custos.config import Settings
from custos.kit.ids import new_id
from custos.kit.time import utcnow
from custos.models import AuthSession, RefreshToken
from custos.runtime import Runtime
from tests.conftest import make_settings
from tests.factories import Factory


async def _sessions(runtime: Runtime, user_id: str, tenant_id: str) -> dict[str, str]:
    """One session in each state; returns name -> id."""
    now = utcnow()
    states = {
        "expired_long_ago": {"expires_at": now - timedelta(days=8)},
        "revoked_long_ago": {
            "expires_at": now + timedelta(days=20),
            "revoked_at": now - timedelta(days=8),
        },
        "revoked_yesterday": {
            "expires_at": now + timedelta(days=20),
            "revoked_at": now - timedelta(days=1),
        },
        "live": {"expires_at": now + timedelta(days=20)},
    }
    ids = {}
    async with runtime.db.transaction(tenant_id=tenant_id) as session:
        for name, values in states.items():
            row = AuthSession(id=new_id("ses"), tenant_id=tenant_id, user_id=user_id, **values)
            session.add(row)
            await session.flush()
            session.add(
                RefreshToken(
                    id=new_id("rtk"),
                    tenant_id=tenant_id,
                    session_id=row.id,
                    token_hash=new_id("h"),
                )
            )
            ids[name] = row.id
    return ids


async def _remaining(runtime: Runtime, tenant_id: str, ids: dict[str, str]) -> set[str]:
    async with runtime.db.transaction(tenant_id=tenant_id, write=False) as session:
        found = set(
            (
                await session.execute(
                    sa.select(AuthSession.id).where(AuthSession.id.in_(ids.values()))
                )
            ).scalars()
        )
        tokens = (
            await session.execute(
                sa.select(sa.func.count(RefreshToken.id)).where(
                    RefreshToken.session_id.in_(ids.values())
                )
            )
        ).scalar_one()
    assert tokens == len(found), "refresh tokens must go with their session"
    return {name for name, sid in ids.items() if sid in found}


class TestPurge:
    async def test_sessions_that_ended_over_a_week_ago_are_deleted_with_their_tokens(
        self, runtime: Runtime, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        ids = await _sessions(runtime, tenant.admin.id, tenant.id)
        deleted = await purge_ended_sessions(runtime)
        assert deleted >= 2
        assert await _remaining(runtime, tenant.id, ids) == {"revoked_yesterday", "live"}


class TestInProcessWorker:
    async def test_a_deferred_job_runs_inside_the_api_process(
        self, settings: Settings, factory: Factory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        own = make_settings(settings.database_url, jobs_in_process=True)
        runtime = Runtime.build(own)
        app = create_app(own, runtime)
        tenant = await factory.tenant()
        ids = await _sessions(runtime, tenant.admin.id, tenant.id)
        settled: list[Settings] = []
        released: list[bool] = []
        monkeypatch.setattr("custos.runtime.settle_process", settled.append)
        monkeypatch.setattr("custos.runtime.release_process", lambda: released.append(True))
        async with app.router.lifespan_context(app):
            # Once it is up: analysis helpers started, start-up heap frozen (runtime.py).
            assert settled == [own]
            job_app = app.state.job_app
            await job_app.configure_task("auth.purge_ended_sessions").defer_async(timestamp=0)
            deadline = time.monotonic() + 15
            while "expired_long_ago" in await _remaining(runtime, tenant.id, ids):
                assert time.monotonic() < deadline, "the job did not run"
                await asyncio.sleep(0.1)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                jobs = (await client.get("/health/detailed")).json()["components"]["jobs"]
            # Checked before the lifespan ends: shutting down disposes the runtime's engine.
            assert await _remaining(runtime, tenant.id, ids) == {"revoked_yesterday", "live"}
            assert released == []
        assert released == [True]  # the helpers are stopped with the process's runtime
        assert jobs["status"] == "ok"
        assert jobs["runs_in"] == "this process"


class TestWorkerProcess:
    async def test_custos_worker_runs_jobs_deferred_by_the_api(
        self, settings: Settings, factory: Factory, runtime: Runtime, app: object
    ) -> None:
        if not settings.is_postgres:
            pytest.skip("separate worker processes share a PostgreSQL queue")
        tenant = await factory.tenant()
        ids = await _sessions(runtime, tenant.admin.id, tenant.id)
        job_app = app.state.job_app  # type: ignore[attr-defined]
        async with job_app.open_async():
            job_id = await job_app.configure_task("auth.purge_ended_sessions").defer_async(
                timestamp=0
            )
        env = {
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "CUSTOS_SECRET_KEY": settings.secret_key.get_secret_value(),
            "CUSTOS_ENVIRONMENT": "test",
            "CUSTOS_LOG_LEVEL": "WARNING",
        }
        worker = subprocess.Popen(
            [sys.executable, "-c", "from custos.cli import main; main()", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                async with runtime.db.engine.connect() as conn:
                    # Workers delete a job once it succeeded; a failed one stays.
                    status = (
                        await conn.execute(
                            sa.text("SELECT status FROM procrastinate_jobs WHERE id = :id"),
                            {"id": job_id},
                        )
                    ).scalar_one_or_none() or "succeeded"
                if status in ("succeeded", "failed"):
                    break
                assert time.monotonic() < deadline, f"job still {status}"
                await asyncio.sleep(0.2)
        finally:
            worker.terminate()
            worker.wait(timeout=20)
        assert status == "succeeded"
        assert await _remaining(runtime, tenant.id, ids) == {"revoked_yesterday", "live"}
