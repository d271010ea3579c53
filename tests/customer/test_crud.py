from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from custos.auth.scopes import Role
from tests.factories import Factory, TenantHandle, bearer, login

BASE = "/api/v1/customers"


@pytest.fixture
async def tenant(factory: Factory) -> TenantHandle:
    return await factory.tenant()


async def _create(client: httpx.AsyncClient, tenant: TenantHandle, **body: Any) -> httpx.Response:
    payload = {"full_name": "Jane Doe", **body}
    return await client.post(BASE, json=payload, headers=bearer(tenant.admin_key))


class TestCreate:
    async def test_normalises_and_returns_an_etag_and_location(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        response = await _create(
            client,
            tenant,
            email="Jane.Doe@Example.COM",
            phone="(415) 555-2671",
            address={"line1": "1 Main St", "city": "SF", "country": "us"},
            tags=["VIP", "vip", " beta "],
            metadata={"plan": {"tier": 2}},
        )
        assert response.status_code == 201
        body = response.json()
        assert body["id"].startswith("cus_")
        assert body["email"] == "jane.doe@example.com"
        assert (body["phone"], body["phone_e164"]) == ("(415) 555-2671", "+14155552671")
        assert body["address"]["country"] == "US"
        assert body["tags"] == ["VIP", "beta"]
        assert body["metadata"] == {"plan": {"tier": 2}}
        assert (body["status"], body["customer_type"], body["order_count"]) == (
            "active",
            "individual",
            0,
        )
        assert response.headers["etag"] == f'"{body["id"]}.1"'
        assert response.headers["location"] == f"{BASE}/{body['id']}"

    async def test_the_seed_example_phone_is_kept_and_flagged_by_default(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        body = (await _create(client, tenant, phone="+1234567890")).json()
        assert (body["phone"], body["phone_e164"]) == ("+1234567890", None)

    async def test_a_strict_tenant_refuses_an_unreadable_phone_naming_the_field(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        operator = (await login(client, await factory.platform_admin()))["access_token"]
        tenant = await factory.tenant()
        await client.patch(
            f"/api/admin/tenants/{tenant.id}",
            json={"settings": {"phone_validation": "strict", "phone_default_region": "GB"}},
            headers=bearer(operator),
        )
        refused = await _create(client, tenant, phone="+1234567890")
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["loc"] == ["body", "phone"]
        local = (await _create(client, tenant, phone="020 7946 0958")).json()
        assert local["phone_e164"] == "+442079460958"

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"email": "not-an-email"}, "email"),
            ({"full_name": ""}, "full_name"),
            ({"metadata": {"blob": "x" * 20_000}}, "metadata"),
            ({"metadata": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}, "metadata"),
            ({"address": {"country": "USA"}}, "country"),
            ({"customer_type": "alien"}, "customer_type"),
            ({"tags": ["x" * 51]}, "tags"),
            ({"favourite_colour": "blue"}, "favourite_colour"),
        ],
    )
    async def test_invalid_input_is_a_422_naming_the_field_and_stores_nothing(
        self, client: httpx.AsyncClient, tenant: TenantHandle, body: dict[str, Any], field: str
    ) -> None:
        response = await _create(client, tenant, **body)
        assert response.status_code == 422
        assert any(field in map(str, e["loc"]) for e in response.json()["errors"])
        listed = await client.get(BASE, headers=bearer(tenant.admin_key))
        assert listed.json()["items"] == []

    async def test_duplicate_email_or_external_id_is_409(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        assert (await _create(client, tenant, email="a@example.com")).status_code == 201
        assert (await _create(client, tenant, email="A@EXAMPLE.com")).status_code == 409
        assert (await _create(client, tenant, external_id="crm-1")).status_code == 201
        assert (await _create(client, tenant, external_id="crm-1")).status_code == 409

    async def test_the_same_email_in_another_tenant_is_fine(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        first, second = await factory.tenant(), await factory.tenant()
        assert (await _create(client, first, email="same@example.com")).status_code == 201
        assert (await _create(client, second, email="same@example.com")).status_code == 201


class TestUpdate:
    async def test_patch_is_a_json_merge_patch(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        created = (
            await _create(
                client, tenant, company="Acme", phone="+14155552671", metadata={"a": 1, "b": 2}
            )
        ).json()
        response = await client.patch(
            f"{BASE}/{created['id']}",
            json={"company": None, "metadata": {"a": None, "c": 3}, "status": "inactive"},
            headers=bearer(tenant.admin_key),
        )
        assert response.status_code == 200
        body = response.json()
        assert body["company"] is None
        assert body["metadata"] == {"b": 2, "c": 3}
        assert body["status"] == "inactive"
        assert body["phone_e164"] == "+14155552671"  # untouched
        assert body["version"] == 2
        assert response.headers["etag"] == f'"{created["id"]}.2"'

    async def test_put_replaces_every_field(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        created = (await _create(client, tenant, company="Acme", tags=["x"])).json()
        response = await client.put(
            f"{BASE}/{created['id']}",
            json={"full_name": "New Name"},
            headers=bearer(tenant.admin_key),
        )
        body = response.json()
        assert (body["full_name"], body["company"], body["tags"]) == ("New Name", None, [])

    async def test_a_stale_if_match_is_412_and_a_fresh_one_passes(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        created = await _create(client, tenant)
        path = f"{BASE}/{created.json()['id']}"
        first_etag = created.headers["etag"]
        changed = await client.patch(
            path,
            json={"company": "A"},
            headers={**bearer(tenant.admin_key), "If-Match": first_etag},
        )
        assert changed.status_code == 200
        stale = await client.patch(
            path,
            json={"company": "B"},
            headers={**bearer(tenant.admin_key), "If-Match": first_etag},
        )
        assert stale.status_code == 412
        assert (await client.get(path, headers=bearer(tenant.admin_key))).json()["company"] == "A"
        fresh = await client.put(
            path,
            json={"full_name": "Jane"},
            headers={**bearer(tenant.admin_key), "If-Match": changed.headers["etag"]},
        )
        assert fresh.status_code == 200

    async def test_required_fields_cannot_be_nulled_and_unique_fields_stay_unique(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        await _create(client, tenant, email="taken@example.com")
        other = (await _create(client, tenant, email="free@example.com")).json()
        path = f"{BASE}/{other['id']}"
        headers = bearer(tenant.admin_key)
        assert (
            await client.patch(path, json={"full_name": None}, headers=headers)
        ).status_code == 422
        taken = await client.patch(path, json={"email": "taken@example.com"}, headers=headers)
        assert taken.status_code == 409
        big = await client.patch(path, json={"metadata": {"x": "y" * 20_000}}, headers=headers)
        assert big.status_code == 422


class TestDeleteAndRestore:
    async def test_soft_delete_hides_restore_brings_back(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        created = (await _create(client, tenant, email="gone@example.com")).json()
        path = f"{BASE}/{created['id']}"
        headers = bearer(tenant.admin_key)
        assert (await client.delete(path, headers=headers)).status_code == 204
        assert (await client.get(path, headers=headers)).status_code == 404
        assert (await client.get(BASE, headers=headers)).json()["items"] == []
        with_deleted = await client.get(BASE, params={"include_deleted": "true"}, headers=headers)
        assert [c["id"] for c in with_deleted.json()["items"]] == [created["id"]]
        # The email is free while the record is deleted...
        replacement = (await _create(client, tenant, email="gone@example.com")).json()
        # ...so restoring would make two live records share it.
        clash = await client.post(f"{path}/restore", headers=headers)
        assert clash.status_code == 409
        assert "email" in clash.json()["detail"]
        await client.delete(f"{BASE}/{replacement['id']}", headers=headers)
        restored = await client.post(f"{path}/restore", headers=headers)
        assert restored.status_code == 200
        assert restored.json()["deleted_at"] is None
        assert (await client.post(f"{path}/restore", headers=headers)).status_code == 409

    async def test_hard_delete_needs_customers_delete(
        self, client: httpx.AsyncClient, tenant: TenantHandle, factory: Factory
    ) -> None:
        created = (await _create(client, tenant)).json()
        path = f"{BASE}/{created['id']}"
        developer = await factory.user(tenant.id, tenant.slug, Role.developer)
        token = (await login(client, developer))["access_token"]
        refused = await client.delete(path, params={"hard_delete": "true"}, headers=bearer(token))
        assert refused.status_code == 403
        done = await client.delete(
            path, params={"hard_delete": "true"}, headers=bearer(tenant.admin_key)
        )
        assert done.status_code == 204
        gone = await client.get(
            BASE, params={"include_deleted": "true"}, headers=bearer(tenant.admin_key)
        )
        assert gone.json()["items"] == []


class TestList:
    async def test_filters_cursor_and_skip(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        headers = bearer(tenant.admin_key)
        made = [
            (
                await _create(
                    client,
                    tenant,
                    full_name=f"C{n}",
                    tags=["vip"] if n % 2 else [],
                    company="Acme" if n < 2 else "Globex",
                    customer_type="business" if n == 4 else "individual",
                )
            ).json()
            for n in range(5)
        ]
        vip = await client.get(BASE, params={"tag": "vip"}, headers=headers)
        assert {c["full_name"] for c in vip.json()["items"]} == {"C1", "C3"}
        acme = await client.get(BASE, params={"company": "acme"}, headers=headers)
        assert {c["full_name"] for c in acme.json()["items"]} == {"C0", "C1"}
        business = await client.get(BASE, params={"customer_type": "business"}, headers=headers)
        assert [c["full_name"] for c in business.json()["items"]] == ["C4"]
        await client.patch(f"{BASE}/{made[0]['id']}", json={"status": "inactive"}, headers=headers)
        inactive = await client.get(BASE, params={"is_active": "false"}, headers=headers)
        assert [c["full_name"] for c in inactive.json()["items"]] == ["C0"]
        first = (await client.get(BASE, params={"limit": 2}, headers=headers)).json()
        second = (
            await client.get(
                BASE, params={"limit": 2, "cursor": first["next_cursor"]}, headers=headers
            )
        ).json()
        assert [c["full_name"] for c in first["items"] + second["items"]] == [
            "C4",
            "C3",
            "C2",
            "C1",
        ]
        skipped = await client.get(BASE, params={"limit": 2, "skip": 3}, headers=headers)
        assert [c["full_name"] for c in skipped.json()["items"]] == ["C1", "C0"]
        assert (await client.get(BASE, params={"limit": 1001}, headers=headers)).status_code == 422
        both = await client.get(
            BASE, params={"skip": 1, "cursor": first["next_cursor"]}, headers=headers
        )
        assert both.status_code == 422


class TestSeedEraPaths:
    async def test_unversioned_paths_serve_the_current_version_unlisted(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        created = await client.post(
            "/api/customers", json={"full_name": "Old Client"}, headers=bearer(tenant.admin_key)
        )
        assert created.status_code == 201
        fetched = await client.get(
            f"{BASE}/{created.json()['id']}", headers=bearer(tenant.admin_key)
        )
        assert fetched.json()["full_name"] == "Old Client"
        schema = (await client.get("/openapi.json")).json()
        assert "/api/v1/customers" in schema["paths"]
        assert not [p for p in schema["paths"] if p.startswith("/api/customers")]


class TestSort:
    async def test_sort_by_fields_with_paging_and_unknown_fields_refused(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        headers = bearer(tenant.admin_key)
        for name, company in (("Cara", "Beta"), ("Abe", "Alpha"), ("Bea", None), ("Dan", "Alpha")):
            await _create(client, tenant, full_name=name, company=company)
        by_name = await client.get(BASE, params={"sort": "full_name"}, headers=headers)
        assert [c["full_name"] for c in by_name.json()["items"]] == ["Abe", "Bea", "Cara", "Dan"]
        combined = await client.get(
            BASE, params={"sort": "company,-full_name", "limit": 2}, headers=headers
        )
        page = combined.json()
        assert [c["full_name"] for c in page["items"]] == ["Dan", "Abe"]
        rest = await client.get(
            BASE,
            params={"sort": "company,-full_name", "limit": 2, "cursor": page["next_cursor"]},
            headers=headers,
        )
        # Nulls sort last whichever the direction.
        assert [c["full_name"] for c in rest.json()["items"]] == ["Cara", "Bea"]
        assert rest.json()["next_cursor"] is None
        unknown = await client.get(BASE, params={"sort": "password_hash"}, headers=headers)
        assert unknown.status_code == 422
        assert unknown.json()["errors"][0]["loc"] == ["query", "sort"]


class TestRaces:
    async def test_concurrent_creates_with_one_email_make_one_record(
        self, raw_client: httpx.AsyncClient, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        responses = await asyncio.gather(
            *(
                raw_client.post(
                    BASE,
                    json={"full_name": f"Racer {n}", "email": "race@example.com"},
                    headers=bearer(tenant.admin_key),
                )
                for n in range(8)
            )
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] + [409] * 7
        listed = await client.get(BASE, headers=bearer(tenant.admin_key))
        assert [c["email"] for c in listed.json()["items"]] == ["race@example.com"]
