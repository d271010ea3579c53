from __future__ import annotations

import httpx
import pytest

from custos.auth.scopes import ROLE_SCOPES, Role
from tests.factories import Factory, TenantHandle, bearer

BASE = "/api/v1/customers"
INTERNAL = "/api/v1/internal/customers"


@pytest.fixture
async def tenant(factory: Factory) -> TenantHandle:
    return await factory.tenant()


@pytest.fixture
async def service_key(factory: Factory, tenant: TenantHandle) -> str:
    return await factory.key(tenant.id, sorted(ROLE_SCOPES[Role.service]), name="orders")


async def _customer(client: httpx.AsyncClient, tenant: TenantHandle) -> str:
    response = await client.post(
        BASE, json={"full_name": "Buyer"}, headers=bearer(tenant.admin_key)
    )
    customer_id: str = response.json()["id"]
    return customer_id


class TestStatistics:
    async def test_increments_add_up_once_each(
        self,
        client: httpx.AsyncClient,
        raw_client: httpx.AsyncClient,
        tenant: TenantHandle,
        service_key: str,
    ) -> None:
        customer_id = await _customer(client, tenant)
        path = f"{INTERNAL}/{customer_id}/statistics"
        order = {
            "increment_id": "order-1",
            "orders": 1,
            "order_value": "19.99",
            "currency": "EUR",
            "last_order_at": "2026-11-01T10:00:00Z",
        }
        first = await client.patch(path, json=order, headers=bearer(service_key))
        assert first.status_code == 200
        assert first.json()["applied"] is True
        # A retry by the order service changes nothing (and writes no audit row).
        retry = await raw_client.patch(path, json=order, headers=bearer(service_key))
        assert retry.json()["applied"] is False
        await client.patch(
            path,
            json={"increment_id": "complaint-9", "complaints": 1},
            headers=bearer(service_key),
        )
        await client.patch(
            path,
            json={
                "increment_id": "order-2",
                "orders": 1,
                "order_value": "5.01",
                "last_order_at": "2026-10-01T10:00:00Z",
            },
            headers=bearer(service_key),
        )
        stats = (
            await client.get(f"{BASE}/{customer_id}/statistics", headers=bearer(tenant.admin_key))
        ).json()
        assert stats == {
            "order_count": 2,
            "total_order_value": "25.00",
            "currency": "EUR",
            "complaint_count": 1,
            "last_order_at": "2026-11-01T10:00:00Z",  # the older order does not move it back
        }

    async def test_bad_increments_are_refused(
        self, client: httpx.AsyncClient, tenant: TenantHandle, service_key: str
    ) -> None:
        customer_id = await _customer(client, tenant)
        path = f"{INTERNAL}/{customer_id}/statistics"
        headers = bearer(service_key)
        for body in (
            {"orders": 1},
            {"increment_id": "a", "orders": -1},
            {"increment_id": "b", "order_value": "1.005", "currency": "EUR"},
            {"increment_id": "c", "currency": "euro"},
            {"increment_id": "d", "order_value": "3.00"},
        ):
            assert (await client.patch(path, json=body, headers=headers)).status_code == 422, body
        await client.patch(
            path, json={"increment_id": "e", "order_value": "1", "currency": "EUR"}, headers=headers
        )
        other = await client.patch(
            path, json={"increment_id": "f", "order_value": "1", "currency": "USD"}, headers=headers
        )
        assert other.status_code == 409
        other_customer = await _customer(client, tenant)
        reused = await client.patch(
            f"{INTERNAL}/{other_customer}/statistics",
            json={"increment_id": "e", "orders": 1},
            headers=headers,
        )
        assert reused.status_code == 409

    async def test_only_service_callers_report_increments(
        self, client: httpx.AsyncClient, tenant: TenantHandle, factory: Factory
    ) -> None:
        customer_id = await _customer(client, tenant)
        developer_key = await factory.key(tenant.id, ["customers:write", "customers:read"])
        response = await client.patch(
            f"{INTERNAL}/{customer_id}/statistics",
            json={"increment_id": "x", "complaints": 1},
            headers=bearer(developer_key),
        )
        assert response.status_code == 403


class TestUpstreamCreation:
    async def test_idempotent_on_external_id_and_found_by_it(
        self, client: httpx.AsyncClient, raw_client: httpx.AsyncClient, service_key: str
    ) -> None:
        body = {"external_id": "auth0|123", "full_name": "Signed Up", "email": "new@example.com"}
        first = await client.post(INTERNAL, json=body, headers=bearer(service_key))
        assert first.status_code == 201
        again = await raw_client.post(INTERNAL, json=body, headers=bearer(service_key))
        assert again.status_code == 200
        assert again.json()["id"] == first.json()["id"]
        found = await client.get(
            f"{INTERNAL}/by-external-id/auth0|123", headers=bearer(service_key)
        )
        assert found.json()["id"] == first.json()["id"]
        missing = await client.get(f"{INTERNAL}/by-external-id/nobody", headers=bearer(service_key))
        assert missing.status_code == 404
        without = await client.post(
            INTERNAL, json={"full_name": "No Id"}, headers=bearer(service_key)
        )
        assert without.status_code == 422
