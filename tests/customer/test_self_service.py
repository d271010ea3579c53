from __future__ import annotations

import httpx

from custos.auth.scopes import Role
from tests.factories import Factory, bearer, login

BASE = "/api/v1/customers"


async def _linked_customer(client: httpx.AsyncClient, factory: Factory) -> tuple[str, str, str]:
    """A tenant admin key, a customer record and a token of the customer-role user for it."""
    tenant = await factory.tenant()
    record = await client.post(
        BASE,
        json={"full_name": "Self Served", "email": "self@example.com", "tags": ["vip"]},
        headers=bearer(tenant.admin_key),
    )
    customer_id = record.json()["id"]
    created = await client.post(
        "/api/v1/users",
        json={
            "email": "self@example.com",
            "password": "a-long-customer-password",
            "role": "customer",
            "customer_id": customer_id,
        },
        headers=bearer(tenant.admin_key),
    )
    assert created.status_code == 201
    token = (
        await client.post(
            "/api/v1/auth/login",
            json={"email": "self@example.com", "password": "a-long-customer-password"},
        )
    ).json()["access_token"]
    return tenant.admin_key, customer_id, token


class TestSelfService:
    async def test_a_customer_reads_and_changes_only_their_own_record(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        admin_key, customer_id, token = await _linked_customer(client, factory)
        me = await client.get(f"{BASE}/me", headers=bearer(token))
        assert me.status_code == 200
        assert me.json()["id"] == customer_id
        changed = await client.patch(
            f"{BASE}/me",
            json={"full_name": "Renamed Myself", "phone": "+14155552671"},
            headers=bearer(token),
        )
        assert changed.status_code == 200
        assert changed.json()["phone_e164"] == "+14155552671"
        # Fields the business owns are not the customer's to change.
        for body in ({"tags": []}, {"status": "inactive"}, {"email": "x@example.com"}):
            refused = await client.patch(f"{BASE}/me", json=body, headers=bearer(token))
            assert refused.status_code == 422, body
        # Nobody else's record, and no lists.
        assert (await client.get(BASE, headers=bearer(token))).status_code == 403
        assert (await client.get(f"{BASE}/{customer_id}", headers=bearer(token))).status_code == 403
        record = await client.get(f"{BASE}/{customer_id}", headers=bearer(admin_key))
        assert record.json()["full_name"] == "Renamed Myself"
        assert record.json()["tags"] == ["vip"]

    async def test_staff_and_unlinked_accounts_have_no_me(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        assert (await client.get(f"{BASE}/me", headers=bearer(tenant.admin_key))).status_code == 403
        unlinked = await factory.user(tenant.id, tenant.slug, Role.customer)
        token = (await login(client, unlinked))["access_token"]
        assert (await client.get(f"{BASE}/me", headers=bearer(token))).status_code == 404

    async def test_a_user_can_only_be_linked_to_a_customer_of_the_tenant(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant, other = await factory.tenant(), await factory.tenant()
        foreign = await client.post(
            BASE, json={"full_name": "Elsewhere"}, headers=bearer(other.admin_key)
        )
        response = await client.post(
            "/api/v1/users",
            json={
                "email": "link@example.com",
                "password": "a-long-customer-password",
                "role": "customer",
                "customer_id": foreign.json()["id"],
            },
            headers=bearer(tenant.admin_key),
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["loc"] == ["body", "customer_id"]
