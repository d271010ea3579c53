from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from custos.config import Settings
from custos.db import create_engine
from custos.models import AuditLog
from tests.factories import Factory, TenantHandle, bearer


@pytest.fixture
async def owner_engine(settings: Settings) -> Any:
    """The schema owner's connection: how someone with database access would tamper."""
    engine = create_engine(settings, runtime_role=False)
    # On SQLite a transaction that reads, then writes after another connection committed
    # (the app's background writers do), fails at once as "locked": take the lock first.
    yield engine.execution_options(sqlite_begin="IMMEDIATE")
    await engine.dispose()


async def _busy_tenant(client: httpx.AsyncClient, factory: Factory) -> TenantHandle:
    tenant = await factory.tenant()
    for n in range(3):
        response = await client.post(
            "/api/v1/users",
            json={"email": f"u{n}@example.com", "password": "long-enough-secret"},
            headers=bearer(tenant.admin_key),
        )
        assert response.status_code == 201
    # Reading the verdict seals the rows just written into the chain.
    assert (await _verify(client, tenant))["valid"] is True
    return tenant


async def _tamper(conn: Any) -> None:
    """What an attacker holding the owner's password would do first: on PostgreSQL a trigger
    keeps sealed rows final, and only a superuser can switch triggers off."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text("SET LOCAL session_replication_role = replica"))


async def _verify(client: httpx.AsyncClient, tenant: TenantHandle) -> dict[str, Any]:
    response = await client.get("/api/v1/audit/verify", headers=bearer(tenant.admin_key))
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


class TestAuditLog:
    async def test_each_change_is_recorded_with_who_what_and_masked_values(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        await client.post(
            "/api/v1/users",
            json={"email": "jane.doe@example.com", "password": "long-enough-secret"},
            headers={
                **bearer(tenant.admin_key),
                "User-Agent": "audit-test",
                "X-Request-ID": "req-1",
            },
        )
        page = await client.get(
            "/api/v1/audit", params={"action": "user.created"}, headers=bearer(tenant.admin_key)
        )
        [entry] = [e for e in page.json()["items"] if e["request_id"] == "req-1"]
        assert entry["actor_type"] == "api_key"
        assert entry["target_type"] == "user"
        assert entry["request_id"] == "req-1"
        assert entry["user_agent"] == "audit-test"
        assert entry["changes"]["email"]["to"] == "j***@example.com"
        assert "jane.doe" not in page.text

    async def test_filters(self, client: httpx.AsyncClient, factory: Factory) -> None:
        tenant = await _busy_tenant(client, factory)
        headers = bearer(tenant.admin_key)
        by_prefix = await client.get("/api/v1/audit", params={"action": "user.*"}, headers=headers)
        assert {e["action"] for e in by_prefix.json()["items"]} == {"user.created"}
        first = by_prefix.json()["items"][0]
        by_target = await client.get(
            "/api/v1/audit", params={"target_id": first["target_id"]}, headers=headers
        )
        assert [e["id"] for e in by_target.json()["items"]] == [first["id"]]
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        none = await client.get("/api/v1/audit", params={"since": future}, headers=headers)
        assert none.json()["items"] == []
        naive = await client.get(
            "/api/v1/audit", params={"since": "2026-01-01T00:00:00"}, headers=headers
        )
        assert naive.status_code == 422

    async def test_there_is_no_way_to_change_or_delete_audit_rows_through_the_api(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await _busy_tenant(client, factory)
        entry = (await client.get("/api/v1/audit", headers=bearer(tenant.admin_key))).json()[
            "items"
        ][0]
        for method in ("PUT", "PATCH", "DELETE"):
            for path in ("/api/v1/audit", f"/api/v1/audit/{entry['id']}"):
                response = await client.request(method, path, headers=bearer(tenant.admin_key))
                assert response.status_code in (404, 405), (method, path)

    async def test_concurrent_writes_keep_one_unbroken_chain(
        self, raw_client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        before = (await _verify(raw_client, tenant))["head_seq"]
        responses = await asyncio.gather(
            *(
                raw_client.post(
                    "/api/v1/users",
                    json={"email": f"c{n}@example.com", "password": "long-enough-secret"},
                    headers=bearer(tenant.admin_key),
                )
                for n in range(12)
            )
        )
        assert [r.status_code for r in responses] == [201] * 12
        result = await _verify(raw_client, tenant)
        assert result["valid"] is True
        assert result["checked"] == result["head_seq"] == before + 12


class TestChainVerification:
    async def test_an_untouched_chain_verifies(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await _busy_tenant(client, factory)
        # The factory's tenant, admin and key, then three users.
        assert await _verify(client, tenant) == {
            "valid": True,
            "checked": 6,
            "head_seq": 6,
            "first_broken_seq": None,
            "first_broken_id": None,
            "reason": None,
        }

    @pytest.mark.parametrize(
        "change",
        [
            {"action": "user.deleted"},
            {"actor_id": "usr_SOMEBODYELSE"},
            {"target_id": "usr_OTHER"},
            {"ip": "10.0.0.1"},
            {"request_id": "forged"},
            {"changes": {"email": {"from": None, "to": "x***@evil.example"}}},
            {"occurred_at": datetime(2020, 1, 1, tzinfo=UTC)},
        ],
    )
    async def test_editing_any_field_of_any_row_is_detected(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        owner_engine: AsyncEngine,
        change: dict[str, Any],
    ) -> None:
        tenant = await _busy_tenant(client, factory)
        async with owner_engine.begin() as conn:
            await _tamper(conn)
            await conn.execute(
                sa.update(AuditLog)
                .where(AuditLog.tenant_id == tenant.id, AuditLog.seq == 3)
                .values(**change)
            )
        result = await _verify(client, tenant)
        assert result["valid"] is False
        assert result["first_broken_seq"] == 3
        assert result["reason"] == "row content does not match its hash"

    async def test_recomputing_a_rows_hash_breaks_the_next_link(
        self, client: httpx.AsyncClient, factory: Factory, owner_engine: AsyncEngine
    ) -> None:
        tenant = await _busy_tenant(client, factory)
        from custos.audit.chain import row_hash

        async with owner_engine.begin() as conn:
            await _tamper(conn)
            row = (
                await conn.execute(
                    sa.select(AuditLog).where(AuditLog.tenant_id == tenant.id, AuditLog.seq == 2)
                )
            ).one()
            forged = AuditLog(**{**row._asdict(), "action": "user.deleted"})
            await conn.execute(
                sa.update(AuditLog)
                .where(AuditLog.id == row.id)
                .values(action="user.deleted", hash=row_hash(forged))
            )
        result = await _verify(client, tenant)
        assert (result["valid"], result["first_broken_seq"]) == (False, 3)
        assert "prev_hash" in result["reason"]

    async def test_deleting_a_row_in_the_middle_or_at_the_end_is_detected(
        self, client: httpx.AsyncClient, factory: Factory, owner_engine: AsyncEngine
    ) -> None:
        middle, end = await _busy_tenant(client, factory), await _busy_tenant(client, factory)
        async with owner_engine.begin() as conn:
            await _tamper(conn)
            await conn.execute(
                sa.delete(AuditLog).where(AuditLog.tenant_id == middle.id, AuditLog.seq == 2)
            )
            await conn.execute(
                sa.delete(AuditLog).where(AuditLog.tenant_id == end.id, AuditLog.seq == 6)
            )
        broken_middle = await _verify(client, middle)
        assert (broken_middle["valid"], broken_middle["first_broken_seq"]) == (False, 2)
        broken_end = await _verify(client, end)
        assert (broken_end["valid"], broken_end["first_broken_seq"]) == (False, 6)

    async def test_the_runtime_role_cannot_change_or_delete_audit_rows(
        self, client: httpx.AsyncClient, factory: Factory, uses_postgres: bool, runtime: Any
    ) -> None:
        if not uses_postgres:
            pytest.skip("database privileges exist on PostgreSQL only")
        from sqlalchemy.exc import ProgrammingError

        tenant = await _busy_tenant(client, factory)
        for statement in (
            sa.update(AuditLog).where(AuditLog.tenant_id == tenant.id).values(action="x"),
            sa.delete(AuditLog).where(AuditLog.tenant_id == tenant.id),
        ):
            with pytest.raises(ProgrammingError, match="permission denied"):
                async with runtime.db.transaction(tenant_id=tenant.id) as session:
                    await session.execute(statement)
        assert (await _verify(client, tenant))["valid"] is True


class TestSealing:
    async def test_rows_are_sealed_in_the_background_soon_after_commit(
        self,
        client: httpx.AsyncClient,
        raw_client: httpx.AsyncClient,
        factory: Factory,
        runtime: Any,
    ) -> None:
        tenant = await factory.tenant()
        await asyncio.gather(
            *(
                raw_client.post(
                    "/api/v1/customers",
                    json={"full_name": f"Concurrent {n}"},
                    headers=bearer(tenant.admin_key),
                )
                for n in range(20)
            )
        )
        # No read seals them here: the process's sealer does, within moments.
        for _ in range(100):
            async with runtime.db.transaction(tenant_id=tenant.id, write=False) as session:
                unsealed = await session.scalar(
                    sa.select(sa.func.count())
                    .select_from(AuditLog)
                    .where(AuditLog.tenant_id == tenant.id, AuditLog.seq.is_(None))
                )
            if unsealed == 0:
                break
            await asyncio.sleep(0.05)
        assert unsealed == 0
        result = await _verify(client, tenant)
        assert (result["valid"], result["checked"]) == (True, result["head_seq"])
        assert result["checked"] >= 21

    async def test_a_sealed_row_is_final_even_for_the_owner(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        owner_engine: AsyncEngine,
        uses_postgres: bool,
        runtime: Any,
    ) -> None:
        if not uses_postgres:
            pytest.skip("the trigger and privileges exist on PostgreSQL only")
        from sqlalchemy.exc import DBAPIError

        tenant = await _busy_tenant(client, factory)
        reseal = (
            sa.update(AuditLog)
            .where(AuditLog.tenant_id == tenant.id, AuditLog.seq == 2)
            .values(seq=99, hash="0" * 64)
        )
        with pytest.raises(DBAPIError, match="is sealed and cannot change"):
            async with owner_engine.begin() as conn:
                await conn.execute(reseal)
        with pytest.raises(DBAPIError, match="is sealed and cannot change"):
            async with runtime.db.transaction(tenant_id=tenant.id) as session:
                await session.execute(reseal)
        assert (await _verify(client, tenant))["valid"] is True

    async def test_rows_a_dead_process_left_unsealed_are_sealed_by_the_job(
        self, raw_client: httpx.AsyncClient, factory: Factory, runtime: Any
    ) -> None:
        from custos.audit.sealing import seal, seal_all

        # As if the writing process died between its commits and sealing them.
        sealer, runtime.db.audit_sealer = runtime.db.audit_sealer, None
        try:
            tenant = await factory.tenant()
            for n in range(3):
                made = await raw_client.post(
                    "/api/v1/customers",
                    json={"full_name": f"Orphan {n}"},
                    headers=bearer(tenant.admin_key),
                )
                assert made.status_code == 201
        finally:
            runtime.db.audit_sealer = sealer
        async with runtime.db.transaction(tenant_id=tenant.id, write=False) as session:
            unsealed = await session.scalar(
                sa.select(sa.func.count())
                .select_from(AuditLog)
                .where(AuditLog.tenant_id == tenant.id, AuditLog.seq.is_(None))
            )
        assert unsealed is not None
        assert unsealed >= 4  # the tenant's own creation, then the three customers
        assert await seal_all(runtime.db) >= unsealed
        assert await seal(runtime.db, tenant.id) == 0
        result = await _verify(raw_client, tenant)
        assert result["valid"] is True
        assert result["checked"] == result["head_seq"]

    async def test_sealing_a_chain_with_nothing_pending_writes_nothing(self, runtime: Any) -> None:
        from custos.audit.sealing import seal

        # No tenant of this id: taking the head lock would have to create a head row for it.
        assert await seal(runtime.db, "ten_00000000000000000000000000") == 0
