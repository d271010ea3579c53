from __future__ import annotations

import httpx
import pytest

from tests.factories import Factory, TenantHandle, bearer

BASE = "/api/v1/customers"
BATCH = f"{BASE}/batch"


@pytest.fixture
async def tenant(factory: Factory) -> TenantHandle:
    return await factory.tenant()


async def _names(client: httpx.AsyncClient, tenant: TenantHandle) -> list[str]:
    listed = await client.get(BASE, params={"limit": 1000}, headers=bearer(tenant.admin_key))
    return sorted(c["full_name"] for c in listed.json()["items"])


async def _audit_rows(client: httpx.AsyncClient, tenant: TenantHandle, action: str) -> int:
    page = await client.get(
        "/api/v1/audit", params={"action": action, "limit": 1000}, headers=bearer(tenant.admin_key)
    )
    return len(page.json()["items"])


class TestBatch:
    async def test_per_item_results_report_each_error_by_index(
        self, raw_client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        items = [
            {"full_name": "Good One", "email": "one@example.com"},
            {"full_name": "Bad Email", "email": "nope"},
            {"full_name": "Dup", "email": "one@example.com"},
            {"email": "noname@example.com"},
            {"full_name": "Good Two", "phone": "+14155552671"},
        ]
        response = await raw_client.post(
            BATCH, json={"items": items}, headers=bearer(tenant.admin_key)
        )
        assert response.status_code == 200
        body = response.json()
        assert (body["created"], body["updated"], body["failed"]) == (2, 0, 3)
        statuses = [(r["index"], r["status"]) for r in body["results"]]
        assert statuses == [
            (0, "created"),
            (1, "error"),
            (2, "error"),
            (3, "error"),
            (4, "created"),
        ]
        assert body["results"][1]["errors"][0]["loc"] == ["email"]
        assert "another customer" in body["results"][2]["errors"][0]["msg"].lower()
        assert body["results"][3]["errors"][0]["loc"] == ["full_name"]
        assert "nope" not in response.text  # inputs are not echoed
        assert await _names(raw_client, tenant) == ["Good One", "Good Two"]
        # One audit row per record written, none for the failed items.
        assert await _audit_rows(raw_client, tenant, "customer.created") == 2

    async def test_atomic_writes_nothing_when_any_item_fails(
        self, raw_client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        items = [{"full_name": "Would Be"}, {"full_name": ""}]
        response = await raw_client.post(
            BATCH,
            params={"atomic": "true"},
            json={"items": items},
            headers=bearer(tenant.admin_key),
        )
        assert response.status_code == 422
        assert [e["index"] for e in response.json()["errors"]] == [1]
        assert await _names(raw_client, tenant) == []
        assert await _audit_rows(raw_client, tenant, "customer.created") == 0
        ok = await raw_client.post(
            BATCH,
            params={"atomic": "true"},
            json={"items": [{"full_name": "All"}, {"full_name": "Good"}]},
            headers=bearer(tenant.admin_key),
        )
        assert ok.json()["created"] == 2

    async def test_upsert_matches_on_external_id_then_email(
        self, raw_client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        headers = bearer(tenant.admin_key)
        seeded = await raw_client.post(
            BATCH,
            json={
                "items": [
                    {"full_name": "By Ext", "external_id": "crm-1", "company": "Old"},
                    {"full_name": "By Mail", "email": "mail@example.com", "company": "Old"},
                ]
            },
            headers=headers,
        )
        assert seeded.json()["created"] == 2
        response = await raw_client.post(
            BATCH,
            json={
                "mode": "upsert",
                "items": [
                    {"full_name": "By Ext", "external_id": "crm-1", "company": "New"},
                    {"full_name": "By Mail", "email": "MAIL@example.com", "company": "New"},
                    {"full_name": "Fresh", "email": "fresh@example.com"},
                ],
            },
            headers=headers,
        )
        body = response.json()
        assert (body["created"], body["updated"], body["failed"]) == (1, 2, 0)
        listed = await raw_client.get(BASE, params={"company": "new"}, headers=headers)
        assert sorted(c["full_name"] for c in listed.json()["items"]) == ["By Ext", "By Mail"]

    async def test_limits(self, client: httpx.AsyncClient, tenant: TenantHandle) -> None:
        headers = bearer(tenant.admin_key)
        too_many = {"items": [{"full_name": f"P{n}"} for n in range(1001)]}
        assert (await client.post(BATCH, json=too_many, headers=headers)).status_code == 422
        assert (await client.post(BATCH, json={"items": []}, headers=headers)).status_code == 422
        bad_mode = {"mode": "merge", "items": [{"full_name": "X"}]}
        assert (await client.post(BATCH, json=bad_mode, headers=headers)).status_code == 422


class TestBatchAcrossTenants:
    async def test_an_upsert_never_matches_another_tenants_record(
        self, raw_client: httpx.AsyncClient, factory: Factory
    ) -> None:
        owner, other = await factory.tenant(), await factory.tenant()
        seeded = await raw_client.post(
            BATCH,
            json={
                "items": [{"full_name": "Owner's", "external_id": "x-1", "email": "o@example.com"}]
            },
            headers=bearer(owner.admin_key),
        )
        owner_id = seeded.json()["results"][0]["id"]
        response = await raw_client.post(
            BATCH,
            json={
                "mode": "upsert",
                "items": [
                    {"full_name": "Theirs A", "external_id": "x-1"},
                    {"full_name": "Theirs B", "email": "o@example.com"},
                ],
            },
            headers=bearer(other.admin_key),
        )
        body = response.json()
        assert (body["created"], body["updated"]) == (2, 0)
        assert owner_id not in response.text
        kept = await raw_client.get(f"{BASE}/{owner_id}", headers=bearer(owner.admin_key))
        assert kept.json()["full_name"] == "Owner's"
        assert kept.json()["version"] == 1
