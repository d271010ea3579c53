"""PostgreSQL: a transaction that writes events names them in `event_outbox`; workers turn
the rows into `events.dispatch` jobs, a job per tenant for many transactions' events, in
one transaction (nothing lost, nothing doubled), and never two workers the same row."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import httpx
import orjson
import psycopg
import pytest
import sqlalchemy as sa
from alembic import command

from custos.db import Database
from custos.event import outbox
from custos.migrate import alembic_config
from custos.models import Event
from custos.runtime import Runtime
from custos.worker.app import create_job_app, queue_stats
from tests.conftest import api_client, own_database, runtime_with
from tests.factories import Factory, bearer

BASE = "/api/v1/customers"


@pytest.fixture(autouse=True)
def _postgres_only(uses_postgres: bool) -> None:
    if not uses_postgres:
        pytest.skip("the event outbox is PostgreSQL's; SQLite queues dispatch jobs itself")


async def _outbox(runtime: Runtime, tenant_id: str) -> list[list[str]]:
    async with runtime.db.transaction(tenant_id=tenant_id, write=False) as session:
        found = await session.execute(sa.text("SELECT event_ids FROM event_outbox ORDER BY id"))
        return [row[0] for row in found]


async def _dispatch_jobs(runtime: Runtime, tenant_id: str) -> list[list[str]]:
    async with runtime.db.engine.connect() as conn:
        found = await conn.execute(
            sa.text(
                "SELECT args FROM procrastinate_jobs WHERE task_name = 'events.dispatch'"
                " AND status = 'todo' AND args->>'tenant_id' = :t ORDER BY id"
            ),
            {"t": tenant_id},
        )
        return [row[0]["event_ids"] for row in found]


async def _events(runtime: Runtime, tenant_id: str, type: str | None = None) -> list[str]:
    async with runtime.db.transaction(tenant_id=tenant_id, write=False) as session:
        query = sa.select(Event.id).order_by(Event.seq)
        if type is not None:
            query = query.where(Event.type == type)
        return list(await session.scalars(query))


async def _quiet_tenant(factory: Factory, runtime: Runtime) -> str:
    """A new tenant whose setting-up left nothing waiting: no outbox row, no dispatch job."""
    tenant = await factory.tenant()
    await outbox.move_all(runtime.db)
    async with runtime.db.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "DELETE FROM procrastinate_jobs WHERE task_name = 'events.dispatch'"
                " AND status = 'todo' AND args->>'tenant_id' = :t"
            ),
            {"t": tenant.id},
        )
    return tenant.id


async def _outbox_rows(runtime: Runtime, rows: list[tuple[str, Any]]) -> None:
    async with runtime.db.transaction(system=True) as session:
        await session.execute(
            sa.text("INSERT INTO event_outbox (tenant_id, event_ids) VALUES (:t, :ids)"),
            [{"t": tenant, "ids": orjson.dumps(ids).decode()} for tenant, ids in rows],
        )


async def test_both_create_paths_name_their_event_in_the_outbox_not_a_job(
    client: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    tenant = await factory.tenant()
    headers = bearer(tenant.admin_key)
    fast = await client.post(BASE, json={"full_name": "Fast"}, headers=headers)
    generic = await client.post(
        BASE, json={"full_name": "Generic"}, headers={**headers, "Idempotency-Key": "k-1"}
    )
    assert fast.status_code == generic.status_code == 201
    # Each transaction's events in a row of their own, the tenant's setting-up included.
    named = await _outbox(runtime, tenant.id)
    assert [i for row in named for i in row] == await _events(runtime, tenant.id)
    assert named[-2:] == [[e] for e in await _events(runtime, tenant.id, "customer.created")]
    assert await _dispatch_jobs(runtime, tenant.id) == []


async def test_a_refused_write_leaves_no_outbox_row(
    client: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    tenant = await factory.tenant()
    headers = bearer(tenant.admin_key)
    body = {"full_name": "Once", "email": "once@example.com"}
    assert (await client.post(BASE, json=body, headers=headers)).status_code == 201
    before = await _outbox(runtime, tenant.id)
    for extra in ({}, {"Idempotency-Key": "k-2"}):  # both paths
        clash = await client.post(BASE, json=body, headers={**headers, **extra})
        assert clash.status_code == 409
    assert await _outbox(runtime, tenant.id) == before


async def test_rows_become_one_job_per_tenant_in_order_split_by_size(
    factory: Factory, runtime: Runtime
) -> None:
    one, two = await _quiet_tenant(factory, runtime), await _quiet_tenant(factory, runtime)
    many = [f"evt_many_{n:05d}" for n in range(outbox.EVENTS_PER_JOB + 20)]
    await _outbox_rows(
        runtime,
        [(one, ["evt_a1", "evt_a2"]), (two, ["evt_b1"]), (one, ["evt_a3"]), (two, many)],
    )
    assert await outbox.move_to_jobs(runtime.db) == 4
    assert await _outbox(runtime, one) == await _outbox(runtime, two) == []
    assert await _dispatch_jobs(runtime, one) == [["evt_a1", "evt_a2", "evt_a3"]]
    assert await _dispatch_jobs(runtime, two) == [
        ["evt_b1", *many[: outbox.EVENTS_PER_JOB - 1]],
        many[outbox.EVENTS_PER_JOB - 1 :],
    ]


async def test_a_batch_takes_at_most_its_rows_and_the_rest_follow(
    factory: Factory, runtime: Runtime
) -> None:
    tenant = await _quiet_tenant(factory, runtime)
    await _outbox_rows(runtime, [(tenant, [f"evt_{n}"]) for n in range(5)])
    assert await outbox.move_to_jobs(runtime.db, rows=3) == 3
    assert await _outbox(runtime, tenant) == [["evt_3"], ["evt_4"]]
    assert await _dispatch_jobs(runtime, tenant) == [["evt_0", "evt_1", "evt_2"]]
    assert await outbox.move_to_jobs(runtime.db, rows=3) == 2
    assert await outbox.move_to_jobs(runtime.db, rows=3) == 0
    assert await _dispatch_jobs(runtime, tenant) == [
        ["evt_0", "evt_1", "evt_2"],
        ["evt_3", "evt_4"],
    ]


async def test_concurrent_movers_never_take_a_row_twice(factory: Factory, runtime: Runtime) -> None:
    tenant = await _quiet_tenant(factory, runtime)
    ids = [f"evt_{n:04d}" for n in range(600)]
    await _outbox_rows(runtime, [(tenant, [i]) for i in ids])
    taken = await asyncio.gather(*(outbox.move_to_jobs(runtime.db, rows=7) for _ in range(40)))
    await outbox.move_all(runtime.db)
    queued = [i for job in await _dispatch_jobs(runtime, tenant) for i in job]
    assert sorted(queued) == ids  # each exactly once
    assert sum(taken) <= len(ids)


async def test_a_move_that_fails_halfway_leaves_every_row(
    factory: Factory, runtime: Runtime
) -> None:
    """Rows are deleted and jobs queued by one statement: a row the database cannot read
    (not a list, which the code never writes) fails it, and takes nothing with it."""
    tenant = await _quiet_tenant(factory, runtime)
    await _outbox_rows(
        runtime,
        [(tenant, ["evt_kept_1"]), (tenant, "not a list"), (tenant, ["evt_kept_2"])],
    )
    with pytest.raises(sa.exc.DBAPIError, match="scalar"):
        await outbox.move_to_jobs(runtime.db)
    assert await _outbox(runtime, tenant) == [["evt_kept_1"], "not a list", ["evt_kept_2"]]
    assert await _dispatch_jobs(runtime, tenant) == []
    async with runtime.db.transaction(system=True) as session:
        await session.execute(
            sa.text("DELETE FROM event_outbox WHERE jsonb_typeof(event_ids) <> 'array'")
        )
    assert await outbox.move_to_jobs(runtime.db) == 2
    assert await _dispatch_jobs(runtime, tenant) == [["evt_kept_1", "evt_kept_2"]]


async def test_a_running_worker_moves_new_rows_within_its_poll(
    client: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    tenant = await factory.tenant()
    mover = asyncio.create_task(outbox.move_forever(runtime.db, poll_seconds=0.02))
    try:
        made = await client.post(
            BASE, json={"full_name": "Moved"}, headers=bearer(tenant.admin_key)
        )
        assert made.status_code == 201
        everything = await _events(runtime, tenant.id)
        for _ in range(200):
            if await _outbox(runtime, tenant.id) == []:
                break
            await asyncio.sleep(0.01)
        queued = [i for job in await _dispatch_jobs(runtime, tenant.id) for i in job]
        assert queued == everything
        assert everything[-1:] == await _events(runtime, tenant.id, "customer.created")
        assert await _outbox(runtime, tenant.id) == []
    finally:
        mover.cancel()
        with pytest.raises(asyncio.CancelledError):
            await mover


async def test_row_level_security_keeps_a_writer_to_its_own_tenant(
    factory: Factory, runtime: Runtime
) -> None:
    mine, theirs = await _quiet_tenant(factory, runtime), await _quiet_tenant(factory, runtime)
    await _outbox_rows(runtime, [(theirs, ["evt_theirs"])])
    assert await _outbox(runtime, mine) == []
    statement, params = outbox.insert(theirs, ["evt_forged"])
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        await runtime.db.one_round_trip(mine, statement, params)
    assert await _outbox(runtime, theirs) == [["evt_theirs"]]


async def test_the_mover_looks_sooner_after_finding_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Idle it waits a whole poll; for a poll after finding rows, a fifth of one; after a
    full batch not at all; after a failure (the database away) longer and longer."""
    script: list[int | str] = [0, 2, 1, 0, outbox.ROWS, 0, "fail", "fail", 0]
    pauses: list[float] = []
    now = [0.0]  # the clock moves only by the mover's pauses

    async def move(_db: object, rows: int = outbox.ROWS) -> int:
        if not script:
            raise asyncio.CancelledError
        value = script.pop(0)
        if value == "fail":
            raise OSError("database away")
        return int(value)

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(outbox, "move_to_jobs", move)
    monkeypatch.setattr(outbox.asyncio, "sleep", sleep)
    with pytest.raises(asyncio.CancelledError):
        await outbox.move_forever(cast(Database, None), poll_seconds=5.0, clock=lambda: now[0])
    assert pauses == [5.0, 1.0, 1.0, 1.0, 1.0, 2.0, 4.0, 5.0]


async def test_queue_stats_count_outbox_rows_as_pending(
    factory: Factory, runtime: Runtime, app: Any
) -> None:
    tenant = await factory.tenant()
    await outbox.move_all(runtime.db)
    job_app = create_job_app(runtime.settings)
    before = await queue_stats(runtime, job_app)
    await _outbox_rows(runtime, [(tenant.id, ["evt_p1"]), (tenant.id, ["evt_p2", "evt_p3"])])
    after = await queue_stats(runtime, job_app)
    assert after.pending == before.pending + 2
    assert after.oldest_pending_at is not None


async def test_the_migration_down_turns_waiting_rows_into_jobs() -> None:
    """Going below the outbox's revision loses no event: each waiting row becomes the job
    the code before it would have queued."""
    async with own_database("custos-outbox") as own:
        async with runtime_with(own.database_url) as runtime:
            tenant = await Factory(runtime).tenant()
            async with api_client(own, runtime) as client:
                for name in ("One", "Two"):
                    made = await client.post(
                        BASE, json={"full_name": name}, headers=bearer(tenant.admin_key)
                    )
                    assert made.status_code == 201
            waiting = await _outbox(runtime, tenant.id)
            assert len(waiting) >= 2  # the tenant's setting-up, and the two creates
        await asyncio.to_thread(command.downgrade, alembic_config(own), "8d1e5f3a7b62")
        async with runtime_with(own.database_url) as runtime:
            assert await _dispatch_jobs(runtime, tenant.id) == waiting
            async with runtime.db.engine.connect() as conn:
                tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
            assert "event_outbox" not in tables
