"""The job mechanism every feature uses: deferred in the caller's transaction, retried with
backoff, kept on the embedded default across restarts, and recovered from a worker that was
killed with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import procrastinate
import pytest
import sqlalchemy as sa

from custos.config import Settings
from custos.kit.ids import new_id
from custos.models import JobOutbox, WebhookDelivery
from custos.runtime import Runtime
from custos.worker.app import InProcessWorker, create_job_app, run_until_idle
from custos.worker.defer import defer, discard_after, pending_count
from custos.worker.recovery import reap_stalled_jobs
from custos.worker.retry import PermanentFailure, ScheduleRetry
from tests.factories import Factory
from tests.receiver import Answer, Receiver
from tests.webhook.test_delivery import make_customer, make_webhook

RUNS: dict[str, list[int]] = {}


def _with_test_tasks(settings: Settings) -> procrastinate.App:
    job_app = create_job_app(settings)

    @job_app.task(name="test.record", pass_context=True, retry=ScheduleRetry([0.2, 0.2]))
    async def record(context: procrastinate.JobContext, marker: str, fail: int = 0) -> None:
        RUNS.setdefault(marker, []).append(context.job.attempts)
        if len(RUNS[marker]) <= fail:
            raise RuntimeError("not yet")

    @job_app.task(name="test.hopeless", pass_context=True, retry=ScheduleRetry([0.1] * 5))
    async def hopeless(context: procrastinate.JobContext, marker: str) -> None:
        RUNS.setdefault(marker, []).append(context.job.attempts)
        raise PermanentFailure("this cannot work")

    return job_app


@pytest.fixture
async def jobs(runtime: Runtime) -> AsyncIterator[procrastinate.App]:
    job_app = _with_test_tasks(runtime.settings)
    async with job_app.open_async():
        yield job_app


async def _defer(runtime: Runtime, tenant_id: str, task: str, **args: Any) -> None:
    async with runtime.db.transaction(tenant_id=tenant_id) as session:
        defer(session, task, **args)


class TestDeferral:
    async def test_a_job_runs_only_if_its_transaction_committed(
        self, runtime: Runtime, factory: Factory, jobs: procrastinate.App
    ) -> None:
        tenant = await factory.tenant()
        kept, dropped = new_id("m"), new_id("m")
        await _defer(runtime, tenant.id, "test.record", marker=kept)

        async def failing_change() -> None:
            async with runtime.db.transaction(tenant_id=tenant.id) as session:
                defer(session, "test.record", marker=dropped)
                raise RuntimeError("the change failed")

        with pytest.raises(RuntimeError, match="the change failed"):
            await failing_change()
        await run_until_idle(runtime, jobs)
        assert RUNS.get(kept) == [0]
        assert dropped not in RUNS

    async def test_jobs_of_a_rolled_back_savepoint_are_forgotten(
        self, runtime: Runtime, factory: Factory, jobs: procrastinate.App
    ) -> None:
        tenant = await factory.tenant()
        kept, dropped = new_id("m"), new_id("m")
        async with runtime.db.transaction(tenant_id=tenant.id) as session:
            defer(session, "test.record", marker=kept)
            mark = pending_count(session)
            defer(session, "test.record", marker=dropped)
            discard_after(session, mark)
        await run_until_idle(runtime, jobs)
        assert (kept in RUNS, dropped in RUNS) == (True, False)

    async def test_a_failing_job_is_retried_with_backoff(
        self, runtime: Runtime, factory: Factory, jobs: procrastinate.App
    ) -> None:
        tenant = await factory.tenant()
        marker = new_id("m")
        await _defer(runtime, tenant.id, "test.record", marker=marker, fail=2)
        started = time.monotonic()
        while len(RUNS.get(marker, [])) < 3:
            await run_until_idle(runtime, jobs)
            assert time.monotonic() - started < 10, RUNS.get(marker)
            await asyncio.sleep(0.05)
        assert RUNS[marker] == [0, 1, 2]
        # Two waits of 0.2 s (+/- 20 %) between the three tries.
        assert time.monotonic() - started >= 0.3

    async def test_a_permanent_failure_is_not_retried_and_stays_on_record(
        self, runtime: Runtime, factory: Factory, jobs: procrastinate.App
    ) -> None:
        tenant = await factory.tenant()
        marker = new_id("m")
        await _defer(runtime, tenant.id, "test.hopeless", marker=marker)
        await run_until_idle(runtime, jobs)
        await asyncio.sleep(0.3)
        await run_until_idle(runtime, jobs)
        assert RUNS[marker] == [0]
        async with runtime.db.engine.connect() as conn:
            if runtime.db.is_postgres:
                status = await conn.scalar(
                    sa.text(
                        "SELECT status FROM procrastinate_jobs"
                        " WHERE task_name = 'test.hopeless' AND args->>'marker' = :m"
                    ),
                    {"m": marker},
                )
                assert status == "failed"
            else:
                failed = await conn.scalar(
                    sa.select(JobOutbox.failed_at).where(
                        JobOutbox.task_name == "test.hopeless",
                        sa.func.json_extract(JobOutbox.args, "$.marker") == marker,
                    )
                )
                assert failed is not None


class TestEmbeddedRestart:
    async def test_unfinished_jobs_run_when_the_process_starts_again(
        self, runtime: Runtime, factory: Factory
    ) -> None:
        if runtime.db.is_postgres:
            pytest.skip("on PostgreSQL the queue itself is durable; this is the SQLite outbox")
        tenant = await factory.tenant()
        marker = new_id("m")
        # Deferred while no worker runs: as if the process died right after the commit.
        await _defer(runtime, tenant.id, "test.record", marker=marker)
        assert marker not in RUNS
        restarted = _with_test_tasks(runtime.settings)
        worker = InProcessWorker(runtime, restarted)
        await worker.start()
        try:
            deadline = time.monotonic() + 10
            while marker not in RUNS:
                assert time.monotonic() < deadline, "the job was not picked up at start-up"
                await asyncio.sleep(0.05)
            deadline = time.monotonic() + 5
            while await _outbox_size(runtime, marker):
                assert time.monotonic() < deadline, "the outbox row outlived its job"
                await asyncio.sleep(0.05)
        finally:
            await worker.stop()
        assert RUNS[marker] == [0]


async def _outbox_size(runtime: Runtime, marker: str) -> int:
    async with runtime.db.engine.connect() as conn:
        found = await conn.scalar(
            sa.select(sa.func.count()).where(
                sa.func.json_extract(JobOutbox.args, "$.marker") == marker
            )
        )
        return int(found or 0)


class TestStalledWorker:
    async def test_a_job_of_a_worker_killed_mid_run_is_finished_by_another(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        runtime: Runtime,
        settings: Settings,
    ) -> None:
        if not settings.is_postgres:
            pytest.skip("separate worker processes share a PostgreSQL queue")
        tenant = await factory.tenant()
        hook = await make_webhook(client, tenant, f"{receiver.url}/slow-then-fine")
        first_seen: list[float] = []

        def answer(request: Any) -> Answer:
            if request.path != "/slow-then-fine":
                return Answer(204)  # other tests' retries, sent by the same worker
            first_seen.append(time.time())
            # The first try hangs until the worker sending it is killed.
            return Answer(204, delay=8 if len(first_seen) == 1 else 0)

        receiver.script = answer
        await make_customer(client, tenant)
        env = {
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "CUSTOS_SECRET_KEY": settings.secret_key.get_secret_value(),
            "CUSTOS_ENVIRONMENT": "test",
            "CUSTOS_LOG_LEVEL": "WARNING",
            "CUSTOS_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
            "CUSTOS_WORKER_HEARTBEAT_SECONDS": "0.5",
        }
        worker = subprocess.Popen(
            [sys.executable, "-c", "from custos.cli import main; main()", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while not first_seen:
                assert time.monotonic() < deadline, "the worker never sent the message"
                await asyncio.sleep(0.05)
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
        await asyncio.sleep(1.5)  # three missed heartbeats
        job_app = create_job_app(settings)
        async with job_app.open_async():
            requeued = await reap_stalled_jobs(job_app, stalled_after=1.0)
            assert requeued >= 1
            await run_until_idle(runtime, job_app)
        assert len(first_seen) == 2, "sent once by the killed worker, once after recovery"
        async with runtime.db.transaction(tenant_id=tenant.id, write=False) as session:
            status = await session.scalar(
                sa.select(WebhookDelivery.status).where(WebhookDelivery.endpoint_id == hook["id"])
            )
        assert status == "succeeded"
        ids = {r.webhook_id for r in receiver.for_path("/slow-then-fine")}
        assert len(ids) == 1
