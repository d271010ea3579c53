"""Consent per purpose: grant, revoke, status, history; events without personal data."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from custos.models import Event
from custos.runtime import Runtime
from tests.factories import Factory, TenantHandle, bearer, configure_tenant, login

BASE = "/api/v1/privacy/consent"


@pytest.fixture
async def tenant(factory: Factory) -> TenantHandle:
    return await factory.tenant()


async def _customer(client: httpx.AsyncClient, tenant: TenantHandle, **extra: Any) -> str:
    made = await client.post(
        "/api/v1/customers",
        json={"full_name": "Consenting Adult", "email": "consenting@example.com", **extra},
        headers=bearer(tenant.admin_key),
    )
    customer_id: str = made.json()["id"]
    return customer_id


class TestConsent:
    async def test_grant_revoke_and_status_with_history(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        admin = bearer(tenant.admin_key)
        customer_id = await _customer(client, tenant)
        granted = await client.post(
            BASE,
            json={
                "customer_id": customer_id,
                "consent_type": "marketing",
                "source": "signup-form",
                "legal_basis": "consent",
                "policy_version": "2026-01",
            },
            headers=admin,
        )
        assert granted.status_code == 201, granted.text
        record = granted.json()
        assert record["granted"] is True
        assert record["actor_type"] == "api_key"
        assert record["id"].startswith("cns_")

        status = (await client.get(BASE, params={"customer_id": customer_id}, headers=admin)).json()
        states = {c["consent_type"]: c for c in status["consents"]}
        assert set(states) == {"marketing", "data_processing", "data_sharing", "analytics"}
        assert states["marketing"]["granted"] is True
        assert states["marketing"]["policy_version"] == "2026-01"
        assert states["analytics"] == {
            "consent_type": "analytics",
            "granted": False,
            "legal_basis": None,
            "policy_version": None,
            "source": None,
            "updated_at": None,
        }

        revoked = await client.request(
            "DELETE",
            BASE,
            params={"customer_id": customer_id, "consent_type": "marketing", "source": "email"},
            headers=admin,
        )
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["granted"] is False
        # A revocation keeps the legal basis and policy of the grant it ends.
        assert revoked.json()["policy_version"] == "2026-01"
        status = (await client.get(BASE, params={"customer_id": customer_id}, headers=admin)).json()
        marketing = next(c for c in status["consents"] if c["consent_type"] == "marketing")
        assert marketing["granted"] is False
        assert marketing["source"] == "email"

        history = (
            await client.get(f"{BASE}/history", params={"customer_id": customer_id}, headers=admin)
        ).json()
        assert [(h["consent_type"], h["granted"]) for h in history["items"]] == [
            ("marketing", False),
            ("marketing", True),
        ]
        assert all(h["occurred_at"] and h["actor_id"] for h in history["items"])

    async def test_history_pages_and_filters_by_purpose(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        admin = bearer(tenant.admin_key)
        customer_id = await _customer(client, tenant)
        for purpose in ("marketing", "analytics", "marketing"):
            await client.post(
                BASE, json={"customer_id": customer_id, "consent_type": purpose}, headers=admin
            )
        first = await client.get(
            f"{BASE}/history", params={"customer_id": customer_id, "limit": 2}, headers=admin
        )
        assert len(first.json()["items"]) == 2
        rest = await client.get(
            f"{BASE}/history",
            params={"customer_id": customer_id, "cursor": first.json()["next_cursor"]},
            headers=admin,
        )
        assert len(rest.json()["items"]) == 1
        assert rest.json()["next_cursor"] is None
        only = await client.get(
            f"{BASE}/history",
            params={"customer_id": customer_id, "consent_type": "analytics"},
            headers=admin,
        )
        assert [h["consent_type"] for h in only.json()["items"]] == ["analytics"]

    async def test_idempotency_key_makes_a_retried_grant_count_once(
        self, client: httpx.AsyncClient, raw_client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        customer_id = await _customer(client, tenant)
        headers = {**bearer(tenant.admin_key), "Idempotency-Key": "grant-1"}
        body = {"customer_id": customer_id, "consent_type": "marketing"}
        first = await client.post(BASE, json=body, headers=headers)
        again = await raw_client.post(BASE, json=body, headers=headers)
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.json() == first.json()
        history = await client.get(
            f"{BASE}/history", params={"customer_id": customer_id}, headers=bearer(tenant.admin_key)
        )
        assert len(history.json()["items"]) == 1

    async def test_tenants_extend_the_purposes(
        self, client: httpx.AsyncClient, factory: Factory, tenant: TenantHandle
    ) -> None:
        admin = bearer(tenant.admin_key)
        customer_id = await _customer(client, tenant)
        body = {"customer_id": customer_id, "consent_type": "profiling"}
        assert (await client.post(BASE, json=body, headers=admin)).status_code == 422
        await configure_tenant(
            client, factory, tenant.id, {"privacy": {"consent_purposes": ["profiling"]}}
        )
        assert (await client.post(BASE, json=body, headers=admin)).status_code == 201
        status = (await client.get(BASE, params={"customer_id": customer_id}, headers=admin)).json()
        assert [c["consent_type"] for c in status["consents"]][-1] == "profiling"

    async def test_bad_input_and_unknown_customers(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        admin = bearer(tenant.admin_key)
        customer_id = await _customer(client, tenant)
        for body in (
            {"customer_id": customer_id, "consent_type": "Marketing!"},
            {"customer_id": customer_id, "consent_type": "marketing", "legal_basis": "whim"},
            {"customer_id": customer_id},
            {"customer_id": customer_id, "consent_type": "marketing", "source": "x" * 101},
        ):
            assert (await client.post(BASE, json=body, headers=admin)).status_code == 422, body
        missing = await client.post(
            BASE, json={"customer_id": "cus_nope", "consent_type": "marketing"}, headers=admin
        )
        assert missing.status_code == 404
        assert (await client.get(BASE, headers=admin)).status_code == 422

    async def test_events_name_the_customer_and_nothing_personal(
        self, client: httpx.AsyncClient, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        admin = bearer(tenant.admin_key)
        customer_id = await _customer(client, tenant)
        await client.post(
            BASE,
            json={"customer_id": customer_id, "consent_type": "analytics", "source": "kiosk"},
            headers=admin,
        )
        await client.request(
            "DELETE", BASE, params={"customer_id": customer_id, "consent_type": "analytics"},
            headers=admin,
        )  # fmt: skip
        async with runtime.db.transaction(tenant_id=tenant.id, write=False) as session:
            rows = await session.scalars(
                sa.select(Event)
                .where(Event.tenant_id == tenant.id, Event.type.startswith("consent."))
                .order_by(Event.seq)
            )
            found = list(rows)
        assert [e.type for e in found] == ["consent.granted", "consent.revoked"]
        assert set(found[0].payload) == {
            "consent_id", "customer_id", "consent_type", "granted", "legal_basis",
            "policy_version",
        }  # fmt: skip
        assert found[0].subject_id == customer_id
        assert "consenting" not in str(found[0].payload)


class TestOwnConsent:
    async def test_a_customer_sees_and_changes_only_their_own_consents(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        customer_id = await _customer(client, tenant)
        await client.post(
            "/api/v1/users",
            json={"email": "consenting@example.com", "password": "a-long-customer-password",
                  "role": "customer", "customer_id": customer_id},
            headers=bearer(tenant.admin_key),
        )  # fmt: skip
        token = (
            await client.post(
                "/api/v1/auth/login",
                json={"email": "consenting@example.com", "password": "a-long-customer-password",
                      "tenant": tenant.slug},
            )
        ).json()["access_token"]  # fmt: skip
        mine = bearer(token)
        granted = await client.post(
            "/api/v1/privacy/me/consents", json={"consent_type": "marketing"}, headers=mine
        )
        assert granted.status_code == 201
        assert granted.json()["source"] == "self-service"
        assert granted.json()["actor_type"] == "user"
        # The customer names the purpose only: no other customer, legal basis or source.
        sneaky = await client.post(
            "/api/v1/privacy/me/consents",
            json={"consent_type": "marketing", "customer_id": "cus_other"},
            headers=mine,
        )
        assert sneaky.status_code == 422
        status = (await client.get("/api/v1/privacy/me/consents", headers=mine)).json()
        assert status["customer_id"] == customer_id
        assert next(c for c in status["consents"] if c["consent_type"] == "marketing")["granted"]
        withdrawn = await client.request(
            "DELETE", "/api/v1/privacy/me/consents", params={"consent_type": "marketing"},
            headers=mine,
        )  # fmt: skip
        assert withdrawn.status_code == 200
        assert withdrawn.json()["granted"] is False
        assert (
            await client.get(BASE, params={"customer_id": customer_id}, headers=mine)
        ).status_code == 403

    async def test_an_account_without_a_record_has_no_consents(
        self, client: httpx.AsyncClient, factory: Factory, tenant: TenantHandle
    ) -> None:
        from custos.auth.scopes import Role

        unlinked = await factory.user(tenant.id, tenant.slug, Role.customer)
        token = (await login(client, unlinked))["access_token"]
        response = await client.get("/api/v1/privacy/me/consents", headers=bearer(token))
        assert response.status_code == 404
