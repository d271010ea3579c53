"""The read cache in front of customer reads and list pages: hits and misses, every kind of
write seen by the next read, the reader-writer race, tenant isolation, and clearing."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from custos.customer import reads
from custos.runtime import Runtime
from tests.bulk.helpers import csv_bytes, run_to_end, start_import
from tests.customer.test_merge import _create
from tests.factories import Factory, TenantHandle, bearer

BASE = "/api/v1/customers"


async def _stats(client: httpx.AsyncClient, tenant: TenantHandle) -> dict[str, Any]:
    response = await client.get("/api/v1/cache/stats", headers=bearer(tenant.admin_key))
    assert response.status_code == 200
    stats: dict[str, Any] = response.json()
    return stats


async def _counted(
    client: httpx.AsyncClient, tenant: TenantHandle, call: Callable[[], Awaitable[Any]]
) -> tuple[int, int]:
    """(hits, misses) that `call` added to the tenant's statistics."""
    before = await _stats(client, tenant)
    await call()
    after = await _stats(client, tenant)
    return after["hits"] - before["hits"], after["misses"] - before["misses"]


@pytest.fixture
async def tenant(factory: Factory) -> TenantHandle:
    return await factory.tenant()


class TestHitsAndMisses:
    async def test_a_second_read_is_a_hit_with_the_same_body_and_etag(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        created = await _create(client, tenant, full_name="Ada Lovelace", email="ada@example.com")
        path = f"{BASE}/{created['id']}"
        first: list[httpx.Response] = []
        second: list[httpx.Response] = []

        async def read(into: list[httpx.Response]) -> None:
            into.append(await client.get(path, headers=bearer(tenant.admin_key)))

        assert await _counted(client, tenant, lambda: read(first)) == (0, 1)
        assert await _counted(client, tenant, lambda: read(second)) == (1, 0)
        assert first[0].json() == second[0].json()
        assert first[0].json()["full_name"] == created["full_name"]
        assert first[0].headers["etag"] == second[0].headers["etag"]
        stats = await _stats(client, tenant)
        assert stats["hit_rate"] == round(stats["hits"] / (stats["hits"] + stats["misses"]), 6)
        metrics = (await client.get("/metrics")).text
        assert 'custos_cache_requests_total{cache="customer",result="hit"}' in metrics
        assert 'custos_cache_requests_total{cache="customer",result="miss"}' in metrics

    async def test_list_pages_are_cached_per_query(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        await _create(client, tenant, full_name="Grace Hopper", tags=["navy"])
        headers = bearer(tenant.admin_key)

        async def listing(params: dict[str, str]) -> None:
            assert (await client.get(BASE, params=params, headers=headers)).status_code == 200

        assert await _counted(client, tenant, lambda: listing({"tag": "navy"})) == (0, 1)
        assert await _counted(client, tenant, lambda: listing({"tag": "navy"})) == (1, 0)
        assert await _counted(client, tenant, lambda: listing({"q": "grace"})) == (0, 1)
        # The same query in another order is the same page.
        both = {"tag": "navy", "limit": "10"}
        assert await _counted(client, tenant, lambda: listing(both)) == (0, 1)
        reordered = {"limit": "10", "tag": "navy"}
        assert await _counted(client, tenant, lambda: listing(reordered)) == (1, 0)


async def _customer(client: httpx.AsyncClient, tenant: TenantHandle, customer_id: str) -> Any:
    response = await client.get(f"{BASE}/{customer_id}", headers=bearer(tenant.admin_key))
    return response.json() if response.status_code == 200 else response.status_code


class TestEveryWriteIsSeen:
    """A write that returned is never followed by the old value: cached record and lists."""

    async def test_replace_patch_delete_restore_and_hard_delete(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        headers = bearer(tenant.admin_key)
        customer_id = (await _create(client, tenant, full_name="Before"))["id"]
        path = f"{BASE}/{customer_id}"
        assert (await _customer(client, tenant, customer_id))["full_name"] == "Before"
        await client.patch(path, json={"full_name": "Patched"}, headers=headers)
        assert (await _customer(client, tenant, customer_id))["full_name"] == "Patched"
        await client.put(path, json={"full_name": "Replaced"}, headers=headers)
        assert (await _customer(client, tenant, customer_id))["full_name"] == "Replaced"
        await client.delete(path, headers=headers)
        assert await _customer(client, tenant, customer_id) == 404
        await client.post(f"{path}/restore", headers=headers)
        assert (await _customer(client, tenant, customer_id))["version"] == 5
        await client.delete(path, params={"hard_delete": "true"}, headers=headers)
        assert await _customer(client, tenant, customer_id) == 404

    async def test_statistics_from_the_internal_api(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        customer_id = (await _create(client, tenant, full_name="Buyer"))["id"]
        assert (await _customer(client, tenant, customer_id))["order_count"] == 0
        applied = await client.patch(
            f"/api/v1/internal/customers/{customer_id}/statistics",
            json={"increment_id": "order-1", "orders": 2},
            headers=bearer(tenant.admin_key),
        )
        assert applied.status_code == 200
        assert (await _customer(client, tenant, customer_id))["order_count"] == 2

    async def test_batch_upserts(self, client: httpx.AsyncClient, tenant: TenantHandle) -> None:
        customer_id = (await _create(client, tenant, full_name="One", external_id="crm-1"))["id"]
        assert (await _customer(client, tenant, customer_id))["full_name"] == "One"
        done = await client.post(
            f"{BASE}/batch",
            json={"mode": "upsert", "items": [{"external_id": "crm-1", "full_name": "Uno"}]},
            headers=bearer(tenant.admin_key),
        )
        assert done.json()["updated"] == 1
        assert (await _customer(client, tenant, customer_id))["full_name"] == "Uno"

    async def test_merge_and_undo_including_the_record_merged_away(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        headers = bearer(tenant.admin_key)
        primary = (await _create(client, tenant, full_name="Twin", email="a@example.com"))["id"]
        secondary = (await _create(client, tenant, full_name="Twin", phone="+14155550100"))["id"]
        for customer_id in (primary, secondary):
            assert isinstance(await _customer(client, tenant, customer_id), dict)
        merged = await client.post(
            f"{BASE}/merge", json={"primary": primary, "secondary": secondary}, headers=headers
        )
        assert merged.status_code == 201
        assert (await _customer(client, tenant, primary))["phone"] == "+14155550100"
        assert await _customer(client, tenant, secondary) == 404
        undo = await client.post(
            f"{BASE}/merges/{merged.json()['merge']['id']}/undo", headers=headers
        )
        assert undo.status_code == 200
        assert (await _customer(client, tenant, primary))["phone"] is None
        assert (await _customer(client, tenant, secondary))["phone"] == "+14155550100"

    async def test_self_service_changes(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        email = f"me-{secrets.token_hex(4)}@example.com"
        customer_id = (await _create(client, tenant, full_name="Me", email=email))["id"]
        account = {"email": email, "password": "a-long-customer-password"}
        created = await client.post(
            "/api/v1/users",
            json={**account, "role": "customer", "customer_id": customer_id},
            headers=bearer(tenant.admin_key),
        )
        assert created.status_code == 201
        login = await client.post("/api/v1/auth/login", json=account)
        token = login.json()["access_token"]
        assert (await _customer(client, tenant, customer_id))["full_name"] == "Me"
        await client.patch(f"{BASE}/me", json={"full_name": "Myself"}, headers=bearer(token))
        assert (await _customer(client, tenant, customer_id))["full_name"] == "Myself"

    async def test_bulk_imports_and_complaints(
        self, client: httpx.AsyncClient, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        """Written with COPY and Core statements, out of the ORM's sight."""
        headers = bearer(tenant.admin_key)
        customer_id = (await _create(client, tenant, full_name="Old", email="old@example.com"))[
            "id"
        ]
        assert (await _customer(client, tenant, customer_id))["full_name"] == "Old"
        listed = await client.get(BASE, headers=headers)
        assert [c["full_name"] for c in listed.json()["items"]] == ["Old"]
        started = await start_import(
            client,
            tenant.admin_key,
            csv_bytes([["email", "full_name"], ["old@example.com", "New"], ["n@example.com", "N"]]),
            mode="upsert",
        )
        assert started.status_code == 202, started.text
        done = await run_to_end(runtime, client, tenant.admin_key, started.json()["id"])
        assert (done["created"], done["updated"]) == (1, 1), done
        assert (await _customer(client, tenant, customer_id))["full_name"] == "New"
        listed = await client.get(BASE, params={"sort": "full_name"}, headers=headers)
        assert [c["full_name"] for c in listed.json()["items"]] == ["N", "New"]
        complaint = await client.post(
            "/api/v1/feedback",
            json={"customer_id": customer_id, "feedback_type": "complaint", "content": "Late."},
            headers=headers,
        )
        assert complaint.status_code == 201, complaint.text
        assert (await _customer(client, tenant, customer_id))["complaint_count"] == 1

    async def test_list_pages_follow_creates_changes_and_deletes(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        headers = bearer(tenant.admin_key)

        async def names() -> list[str]:
            page = await client.get(BASE, params={"sort": "full_name"}, headers=headers)
            return [c["full_name"] for c in page.json()["items"]]

        first = (await _create(client, tenant, full_name="Alpha"))["id"]
        assert await names() == ["Alpha"]
        await _create(client, tenant, full_name="Beta")
        assert await names() == ["Alpha", "Beta"]
        await client.patch(f"{BASE}/{first}", json={"full_name": "Gamma"}, headers=headers)
        assert await names() == ["Beta", "Gamma"]
        await client.delete(f"{BASE}/{first}", headers=headers)
        assert await names() == ["Beta"]


class TestRace:
    async def test_a_reader_that_read_before_a_write_cannot_put_the_old_record_back(
        self, client: httpx.AsyncClient, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        """The reader misses and reads the database; the writer commits and invalidates;
        only then does the reader store what it read. The next read must not get it."""
        headers = bearer(tenant.admin_key)
        customer_id = (await _create(client, tenant, full_name="Old"))["id"]
        read_old = asyncio.Event()
        written = asyncio.Event()
        cache = runtime.read_cache
        actor = await _principal(runtime, tenant)

        async def slow_load() -> tuple[bytes, str]:
            old = await reads.customer_document(runtime.db, actor, customer_id)
            read_old.set()
            await written.wait()  # the write commits and invalidates meanwhile
            return old

        reader = asyncio.create_task(cache.customer(tenant.id, customer_id, slow_load))
        await read_old.wait()
        changed = await client.patch(
            f"{BASE}/{customer_id}", json={"full_name": "New"}, headers=headers
        )
        assert changed.status_code == 200
        written.set()
        stale_body, _ = await reader  # that reader answers what it read, as it was then
        assert b'"Old"' in stale_body
        assert (await _customer(client, tenant, customer_id))["full_name"] == "New"

    async def test_concurrent_readers_never_see_a_write_undone(
        self, raw_client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        headers = bearer(tenant.admin_key)
        made = await raw_client.post(BASE, json={"full_name": "v0"}, headers=headers)
        path = f"{BASE}/{made.json()['id']}"
        stop = asyncio.Event()

        async def hammer() -> None:
            while not stop.is_set():
                await raw_client.get(path, headers=headers)
                # In-process, a cache hit never waits on I/O: with short pauses four readers
                # keep the one thread busy, and on SQLite the writers' connection threads
                # (aiosqlite runs each connection in a thread) then wait on the GIL while
                # holding the write lock, until another writer's busy timeout (30 s) ends.
                # Each reader still reads about a hundred times a second, across the writes.
                await asyncio.sleep(0.01)

        readers = [asyncio.create_task(hammer()) for _ in range(4)]
        try:
            for i in range(1, 21):
                changed = await raw_client.patch(path, json={"full_name": f"v{i}"}, headers=headers)
                assert changed.status_code == 200
                seen = (await raw_client.get(path, headers=headers)).json()
                assert seen["full_name"] == f"v{i}", f"write {i} was followed by an old read"
        finally:
            stop.set()
            await asyncio.gather(*readers)


async def _principal(runtime: Runtime, tenant: TenantHandle) -> Any:
    from custos.auth.verifier import Verifier

    return await Verifier(runtime).authenticate(tenant.admin_key)


class TestTenants:
    async def test_one_tenant_can_neither_read_nor_clear_anothers_entries(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        owner, intruder = await factory.tenant(), await factory.tenant()
        customer_id = (await _create(client, owner, full_name="Private Person"))["id"]
        assert isinstance(await _customer(client, owner, customer_id), dict)  # now cached

        read = await client.get(f"{BASE}/{customer_id}", headers=bearer(intruder.admin_key))
        cleared_key = await client.delete(
            f"/api/v1/cache/customer:{customer_id}", headers=bearer(intruder.admin_key)
        )
        cleared_all = await client.delete("/api/v1/cache", headers=bearer(intruder.admin_key))
        intruder_stats = await _stats(client, intruder)
        assert read.status_code == 404
        assert cleared_key.status_code == 404
        assert cleared_all.status_code == 204
        # The owner's entry survived both: its next read is still a hit.
        assert await _counted(client, owner, lambda: _customer(client, owner, customer_id)) == (
            1,
            0,
        )
        # The intruder's read looked in its own tenant's keys only: a miss, then the 404.
        assert (intruder_stats["hits"], intruder_stats["misses"]) == (0, 1)

    async def test_lists_never_mix_tenants(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        first, second = await factory.tenant(), await factory.tenant()
        await _create(client, first, full_name="Only First")
        for tenant in (first, second, first, second):
            page = await client.get(BASE, headers=bearer(tenant.admin_key))
            names = [c["full_name"] for c in page.json()["items"]]
            assert names == (["Only First"] if tenant is first else [])


class TestClearing:
    async def test_clearing_one_record_the_lists_or_everything(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        headers = bearer(tenant.admin_key)
        customer_id = (await _create(client, tenant, full_name="Cached"))["id"]

        async def read_both() -> None:
            await _customer(client, tenant, customer_id)
            await client.get(BASE, headers=headers)

        await read_both()
        assert await _counted(client, tenant, read_both) == (2, 0)
        one = await client.delete(f"/api/v1/cache/customer:{customer_id}", headers=headers)
        assert one.status_code == 204
        assert await _counted(client, tenant, read_both) == (1, 1)
        lists = await client.delete("/api/v1/cache/customers", headers=headers)
        assert lists.status_code == 204
        assert await _counted(client, tenant, read_both) == (1, 1)
        everything = await client.delete("/api/v1/cache", headers=headers)
        assert everything.status_code == 204
        assert await _counted(client, tenant, read_both) == (0, 2)
        audit = await client.get(
            "/api/v1/audit", params={"action": "cache.cleared"}, headers=headers
        )
        assert [e["target_id"] for e in audit.json()["items"]] == [
            "*",
            "customers",
            f"customer:{customer_id}",
        ]

    @pytest.mark.parametrize(
        "key", ["users", "customer:", "customer:x y", "customers%0A", "customer:" + "x" * 70]
    )
    async def test_unknown_keys_are_refused(
        self, client: httpx.AsyncClient, tenant: TenantHandle, key: str
    ) -> None:
        response = await client.delete(f"/api/v1/cache/{key}", headers=bearer(tenant.admin_key))
        assert response.status_code == 422

    async def test_only_cache_admins_may(
        self, client: httpx.AsyncClient, tenant: TenantHandle, factory: Factory
    ) -> None:
        reader = await factory.key(tenant.id, ["customers:read", "usage:read"])
        for method, path in (("GET", "/api/v1/cache/stats"), ("DELETE", "/api/v1/cache")):
            response = await client.request(method, path, headers=bearer(reader))
            assert response.status_code == 403
