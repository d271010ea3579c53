"""Data subject requests: the status machine, one audit row and one event per transition."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from custos.models import Event
from custos.privacy import erasure
from custos.runtime import Runtime
from tests.factories import Factory, TenantHandle, bearer
from tests.privacy.seed import seed_person

BASE = "/api/v1/privacy/requests"


@pytest.fixture
async def tenant(factory: Factory) -> TenantHandle:
    return await factory.tenant()


async def _customer(client: httpx.AsyncClient, tenant: TenantHandle) -> str:
    made = await client.post(
        "/api/v1/customers", json={"full_name": "Asking Person"}, headers=bearer(tenant.admin_key)
    )
    customer_id: str = made.json()["id"]
    return customer_id


async def _move(
    client: httpx.AsyncClient, tenant: TenantHandle, request_id: str, status: str
) -> httpx.Response:
    return await client.post(
        f"{BASE}/{request_id}/transitions", json={"status": status},
        headers=bearer(tenant.admin_key),
    )  # fmt: skip


class TestStatusMachine:
    async def test_an_access_request_from_received_to_completed(
        self, client: httpx.AsyncClient, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        customer_id = await _customer(client, tenant)
        created = await client.post(
            BASE,
            json={"type": "access", "customer_id": customer_id, "note": "asked by phone"},
            headers=bearer(tenant.admin_key),
        )
        assert created.status_code == 201, created.text
        assert created.headers["location"].endswith(created.json()["id"])
        request_id = created.json()["id"]
        assert created.json()["status"] == "received"
        for status in ("verified", "processing", "completed"):
            moved = await _move(client, tenant, request_id, status)
            assert moved.status_code == 200, moved.text
            assert moved.json()["status"] == status
        done = moved.json()
        assert [h["status"] for h in done["history"]] == [
            "received", "verified", "processing", "completed",
        ]  # fmt: skip
        assert done["completed_at"] is not None
        async with runtime.db.transaction(tenant_id=tenant.id, write=False) as session:
            types = list(
                await session.scalars(
                    sa.select(Event.type)
                    .where(Event.tenant_id == tenant.id, Event.subject_id == request_id)
                    .order_by(Event.seq)
                )
            )
        assert types == [
            "privacy.request_received",
            "privacy.request_verified",
            "privacy.request_processing",
            "privacy.request_completed",
        ]
        audit = await client.get(
            "/api/v1/audit", params={"target_id": request_id}, headers=bearer(tenant.admin_key)
        )
        assert [e["changes"]["status"]["to"] for e in reversed(audit.json()["items"])] == [
            "received", "verified", "processing", "completed",
        ]  # fmt: skip

    @pytest.mark.parametrize(
        ("kind", "path", "wanted"),
        [
            ("access", ["verified"], "scheduled"),
            ("access", [], "completed"),
            ("erasure", [], "processing"),
            ("erasure", ["verified"], "completed"),
            ("rectification", ["cancelled"], "verified"),
        ],
    )
    async def test_moves_the_machine_does_not_allow_are_409(
        self,
        client: httpx.AsyncClient,
        tenant: TenantHandle,
        kind: str,
        path: list[str],
        wanted: str,
    ) -> None:
        customer_id = await _customer(client, tenant)
        created = await client.post(
            BASE, json={"type": kind, "customer_id": customer_id}, headers=bearer(tenant.admin_key)
        )
        request_id = created.json()["id"]
        for status in path:
            assert (await _move(client, tenant, request_id, status)).status_code == 200
        refused = await _move(client, tenant, request_id, wanted)
        assert refused.status_code == 409, refused.text

    async def test_an_erasure_request_is_verified_then_scheduled_and_run_by_the_job(
        self, client: httpx.AsyncClient, factory: Factory, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        customer_id = await _customer(client, tenant)
        created = await client.post(
            BASE, json={"type": "erasure", "customer_id": customer_id},
            headers=bearer(tenant.admin_key),
        )  # fmt: skip
        request_id = created.json()["id"]
        assert (await _move(client, tenant, request_id, "verified")).status_code == 200
        # privacy:write may record and verify; scheduling an erasure needs privacy:erase.
        writer = await factory.key(tenant.id, ["privacy:write"])
        refused = await client.post(
            f"{BASE}/{request_id}/transitions", json={"status": "scheduled"},
            headers=bearer(writer),
        )  # fmt: skip
        assert refused.status_code == 403
        scheduled = await client.post(
            f"{BASE}/{request_id}/transitions",
            json={"status": "scheduled", "immediate": True},
            headers=bearer(tenant.admin_key),
        )
        assert scheduled.status_code == 200, scheduled.text
        assert await erasure.run(runtime, tenant.id, request_id) == 1
        done = (await client.get(f"{BASE}/{request_id}", headers=bearer(tenant.admin_key))).json()
        assert done["status"] == "completed"
        assert done["result"]["customer_id"] == customer_id

    async def test_immediate_is_only_for_scheduling(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        customer_id = await _customer(client, tenant)
        created = await client.post(
            BASE, json={"type": "access", "customer_id": customer_id},
            headers=bearer(tenant.admin_key),
        )  # fmt: skip
        response = await client.post(
            f"{BASE}/{created.json()['id']}/transitions",
            json={"status": "verified", "immediate": True},
            headers=bearer(tenant.admin_key),
        )
        assert response.status_code == 422


class TestListAndCreate:
    async def test_lists_filter_by_status_type_and_customer(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        first, second = await _customer(client, tenant), await _customer(client, tenant)
        admin = bearer(tenant.admin_key)
        for customer_id, kind in ((first, "access"), (first, "rectification"), (second, "access")):
            await client.post(BASE, json={"type": kind, "customer_id": customer_id}, headers=admin)
        by_customer = await client.get(BASE, params={"customer_id": first}, headers=admin)
        assert {r["type"] for r in by_customer.json()["items"]} == {"access", "rectification"}
        by_type = await client.get(BASE, params={"type": "access"}, headers=admin)
        assert len(by_type.json()["items"]) == 2
        page = await client.get(BASE, params={"limit": 1}, headers=admin)
        assert page.json()["next_cursor"]
        assert (await client.get(BASE, params={"status": "lost"}, headers=admin)).status_code == 422

    async def test_idempotency_key_makes_a_retry_safe(
        self, client: httpx.AsyncClient, raw_client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        customer_id = await _customer(client, tenant)
        headers = {**bearer(tenant.admin_key), "Idempotency-Key": "dsr-retry-1"}
        body = {"type": "access", "customer_id": customer_id}
        first = await client.post(BASE, json=body, headers=headers)
        # The replay writes nothing, so it goes around the audit-row check.
        again = await raw_client.post(BASE, json=body, headers=headers)
        assert again.status_code == 201
        assert again.json()["id"] == first.json()["id"]
        listed = await client.get(
            BASE, params={"customer_id": customer_id}, headers=bearer(tenant.admin_key)
        )
        assert len(listed.json()["items"]) == 1
        other = await raw_client.post(BASE, json={**body, "type": "rectification"}, headers=headers)
        assert other.status_code == 422

    async def test_bad_bodies_are_422(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        customer_id = await _customer(client, tenant)
        for body in (
            {"type": "deletion", "customer_id": customer_id},
            {"type": "access"},
            {"type": "access", "customer_id": customer_id, "note": "x" * 2001},
            {"type": "access", "customer_id": customer_id, "extra": 1},
        ):
            response = await client.post(BASE, json=body, headers=bearer(tenant.admin_key))
            assert response.status_code == 422, body


class TestSelfService:
    async def test_a_customer_requests_and_cancels_their_own_erasure(
        self, client: httpx.AsyncClient, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        seeded = await seed_person(client, tenant)
        mine = bearer(seeded.token)
        asked = await client.post("/api/v1/privacy/me/erasure", headers=mine)
        assert asked.status_code == 202, asked.text
        assert asked.json()["status"] == "scheduled"
        assert asked.json()["requested_by_id"] == seeded.user_id
        listed = await client.get("/api/v1/privacy/me/requests", headers=mine)
        assert asked.json()["id"] in {r["id"] for r in listed.json()}
        cancelled = await client.post(
            f"/api/v1/privacy/me/requests/{asked.json()['id']}/cancel", headers=mine
        )
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        assert await erasure.run(runtime, tenant.id, asked.json()["id"]) == 0
        me = await client.get("/api/v1/customers/me", headers=mine)
        assert me.status_code == 200

    async def test_a_customer_cannot_cancel_someone_elses_request(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        seeded = await seed_person(client, tenant)
        others = await client.post(
            BASE, json={"type": "access", "customer_id": seeded.other_customer_id},
            headers=bearer(tenant.admin_key),
        )  # fmt: skip
        response = await client.post(
            f"/api/v1/privacy/me/requests/{others.json()['id']}/cancel",
            headers=bearer(seeded.token),
        )
        assert response.status_code == 404
