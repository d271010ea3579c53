"""A database connection lost under the pool (a restart, a failover) is a 503 the client can
retry, never a 500; the pool then reconnects by itself."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from custos.db import create_engine
from custos.runtime import Runtime
from tests.factories import Factory, bearer


async def test_lost_connections_are_a_retryable_503(
    raw_client: httpx.AsyncClient, factory: Factory, runtime: Runtime, uses_postgres: bool
) -> None:
    if not uses_postgres:
        pytest.skip("an embedded SQLite database has no connection to lose")
    tenant = await factory.tenant()
    headers = bearer(tenant.admin_key)
    made = await raw_client.post("/api/v1/customers", json={"full_name": "Kept"}, headers=headers)
    path = f"/api/v1/customers/{made.json()['id']}"
    assert (await raw_client.get(path, headers=headers)).status_code == 200
    # The reads below must reach the database, not the read cache in front of it.
    assert (await raw_client.delete("/api/v1/cache", headers=headers)).status_code == 204

    # As a server restart would: every other session of this database ends.
    killer = create_engine(runtime.settings, runtime_role=False)
    try:
        async with killer.connect() as conn:
            ended = await conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            assert ended.scalar_one() >= 1
    finally:
        await killer.dispose()

    # The first to meet a dead connection (this request, or background work such as audit
    # sealing, if it ran first) gets the error; the pool is then replaced as a whole.
    answers = [await raw_client.get(path, headers=headers) for _ in range(2)]
    statuses = [r.status_code for r in answers]
    assert statuses in ([503, 200], [200, 200]), statuses
    for lost in (r for r in answers if r.status_code == 503):
        assert lost.headers["Retry-After"] == "1"
        assert lost.json()["type"].endswith("database-unavailable")
    assert answers[-1].json()["full_name"] == "Kept"
