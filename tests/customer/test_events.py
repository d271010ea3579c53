"""Customer changes write their events in the same transaction as the change."""

from __future__ import annotations

from typing import Any

import httpx
import sqlalchemy as sa

from custos.models import Event
from custos.runtime import Runtime
from tests.factories import Factory, TenantHandle, bearer

BASE = "/api/v1/customers"


async def _events(runtime: Runtime, tenant_id: str) -> list[Event]:
    async with runtime.db.transaction(tenant_id=tenant_id, write=False) as session:
        rows = await session.execute(
            sa.select(Event)
            .where(Event.tenant_id == tenant_id, Event.type.startswith("customer."))
            .order_by(Event.seq)
        )
        return list(rows.scalars())


class TestCustomerEvents:
    async def test_each_change_writes_its_event_in_order(
        self, client: httpx.AsyncClient, factory: Factory, runtime: Runtime
    ) -> None:
        tenant = await factory.tenant()
        headers = bearer(tenant.admin_key)
        made = await client.post(
            BASE, json={"full_name": "Ada", "email": "ada@example.com"}, headers=headers
        )
        customer_id = made.json()["id"]
        path = f"{BASE}/{customer_id}"
        await client.patch(path, json={"company": "Analytical", "tags": ["vip"]}, headers=headers)
        await client.delete(path, headers=headers)
        await client.post(f"{path}/restore", headers=headers)
        await client.delete(path, params={"hard_delete": "true"}, headers=headers)

        found = await _events(runtime, tenant.id)
        assert [e.type for e in found] == [
            "customer.created",
            "customer.updated",
            "customer.deleted",
            "customer.restored",
            "customer.deleted",
        ]
        assert all(e.subject_id == customer_id for e in found)
        assert [e.seq for e in found] == sorted({e.seq for e in found})
        created, updated, soft, _, hard = (e.payload for e in found)
        assert created["customer"]["email"] == "ada@example.com"
        assert updated["changed_fields"] == ["company", "tags"]
        assert updated["customer"]["company"] == "Analytical"
        assert (soft["hard"], hard["hard"]) == (False, True)
        assert found[0].actor_type == "api_key"
        assert found[0].request_id

    async def test_a_refused_write_leaves_no_event(
        self, client: httpx.AsyncClient, factory: Factory, runtime: Runtime
    ) -> None:
        tenant: TenantHandle = await factory.tenant()
        headers = bearer(tenant.admin_key)
        body: dict[str, Any] = {"full_name": "Bo", "email": "bo@example.com"}
        assert (await client.post(BASE, json=body, headers=headers)).status_code == 201
        assert (await client.post(BASE, json=body, headers=headers)).status_code == 409
        made = await client.post(BASE, json={"full_name": "Cy"}, headers=headers)
        stale = await client.patch(
            f"{BASE}/{made.json()['id']}",
            json={"full_name": "Cyrus"},
            headers={**headers, "If-Match": '"nope.1"'},
        )
        assert stale.status_code == 412
        assert [e.type for e in await _events(runtime, tenant.id)] == [
            "customer.created",
            "customer.created",
        ]

    async def test_statistics_increment_is_an_update_event(
        self, client: httpx.AsyncClient, factory: Factory, runtime: Runtime
    ) -> None:
        tenant = await factory.tenant()
        made = await client.post(BASE, json={"full_name": "Di"}, headers=bearer(tenant.admin_key))
        customer_id = made.json()["id"]
        response = await client.patch(
            f"/api/v1/internal/customers/{customer_id}/statistics",
            json={"increment_id": "ord-1", "orders": 1, "order_value": "9.50", "currency": "EUR"},
            headers=bearer(tenant.admin_key),
        )
        assert response.status_code == 200, response.text
        last = (await _events(runtime, tenant.id))[-1]
        assert last.type == "customer.updated"
        assert last.payload["customer"]["order_count"] == 1
        assert "order_count" in last.payload["changed_fields"]

    async def test_merge_and_undo_are_events_on_the_primary(
        self, client: httpx.AsyncClient, factory: Factory, runtime: Runtime
    ) -> None:
        tenant = await factory.tenant()
        headers = bearer(tenant.admin_key)
        a, b = [
            (await client.post(BASE, json={"full_name": n}, headers=headers)).json()["id"]
            for n in ("Ed", "Edward")
        ]
        merged = await client.post(
            f"{BASE}/merge", json={"primary": a, "secondary": b}, headers=headers
        )
        merge_id = merged.json()["merge"]["id"]
        await client.post(f"{BASE}/merges/{merge_id}/undo", headers=headers)
        merge_event, undo_event = (await _events(runtime, tenant.id))[-2:]
        assert (merge_event.type, merge_event.subject_id) == ("customer.merged", a)
        assert merge_event.payload["secondary_id"] == b
        assert merge_event.payload["merge_id"] == merge_id
        assert (undo_event.type, undo_event.subject_id) == ("customer.merge_undone", a)
        assert undo_event.payload["secondary"]["id"] == b

    async def test_a_batch_writes_events_for_the_items_that_landed_only(
        self, raw_client: httpx.AsyncClient, factory: Factory, runtime: Runtime
    ) -> None:
        client = raw_client  # a batch writes one audit row per item
        tenant = await factory.tenant()
        items = [
            {"full_name": "One", "email": "one@example.com"},
            {"full_name": "Dup", "email": "one@example.com"},
            {"full_name": "Bad", "email": "not-an-email"},
            {"full_name": "Two"},
        ]
        response = await client.post(
            f"{BASE}/batch", json={"items": items}, headers=bearer(tenant.admin_key)
        )
        assert response.status_code == 200, response.text
        assert (response.json()["created"], response.json()["failed"]) == (2, 2)
        found = await _events(runtime, tenant.id)
        assert [e.payload["customer"]["full_name"] for e in found] == ["One", "Two"]
