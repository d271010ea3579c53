from __future__ import annotations

import httpx

from custos.auth.scopes import Role
from tests.factories import Factory, bearer, login


async def _operator_token(client: httpx.AsyncClient, factory: Factory) -> str:
    return (await login(client, await factory.platform_admin()))["access_token"]


class TestTenantAdministration:
    async def test_operator_creates_a_tenant_with_its_first_admin(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        token = await _operator_token(client, factory)
        response = await client.post(
            "/api/admin/tenants",
            json={
                "name": "Acme",
                "slug": "acme-corp",
                "plan": "pro",
                "admin_email": "boss@acme.example",
                "admin_password": "a-long-first-password",
            },
            headers=bearer(token),
        )
        assert response.status_code == 201
        tenant = response.json()
        assert (tenant["plan"], tenant["status"]) == ("pro", "active")
        signed_in = await client.post(
            "/api/v1/auth/login",
            json={"email": "boss@acme.example", "password": "a-long-first-password"},
        )
        assert signed_in.status_code == 200
        duplicate = await client.post(
            "/api/admin/tenants", json={"name": "Again", "slug": "acme-corp"}, headers=bearer(token)
        )
        assert duplicate.status_code == 409
        listed = await client.get(
            "/api/admin/tenants", params={"plan": "pro"}, headers=bearer(token)
        )
        assert tenant["id"] in [t["id"] for t in listed.json()["items"]]

    async def test_invalid_slugs_and_half_given_admins_are_422(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        token = await _operator_token(client, factory)
        for body in (
            {"name": "x", "slug": "Not Valid"},
            {"name": "x", "slug": "-leading"},
            {"name": "x", "slug": "ok-slug", "plan": "platinum"},
            {"name": "x", "slug": "ok-slug", "admin_email": "a@example.com"},
            {"name": "x", "slug": "ok-slug", "settings": {"k": "v" * 20_000}},
        ):
            response = await client.post("/api/admin/tenants", json=body, headers=bearer(token))
            assert response.status_code == 422, body

    async def test_suspension_stops_every_credential_at_once_and_reactivation_restores(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        token = await _operator_token(client, factory)
        tenant = await factory.tenant()
        viewer = await factory.user(tenant.id, tenant.slug, Role.viewer)
        user_token = (await login(client, viewer))["access_token"]
        key = bearer(tenant.admin_key)
        assert (await client.get("/api/v1/users", headers=key)).status_code == 200
        assert (await client.get("/api/v1/auth/me", headers=bearer(user_token))).status_code == 200
        suspended = await client.patch(
            f"/api/admin/tenants/{tenant.id}", json={"status": "suspended"}, headers=bearer(token)
        )
        assert suspended.json()["status"] == "suspended"
        assert (await client.get("/api/v1/users", headers=key)).status_code == 401
        assert (await client.get("/api/v1/auth/me", headers=bearer(user_token))).status_code == 401
        relogin = await client.post(
            "/api/v1/auth/login", json={"email": viewer.email, "password": viewer.password}
        )
        assert relogin.status_code == 401
        await client.patch(
            f"/api/admin/tenants/{tenant.id}", json={"status": "active"}, headers=bearer(token)
        )
        assert (await client.get("/api/v1/users", headers=key)).status_code == 200

    async def test_tenant_admins_are_not_platform_operators(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        for call in (
            client.get("/api/admin/tenants", headers=bearer(tenant.admin_key)),
            client.get(f"/api/admin/tenants/{tenant.id}", headers=bearer(tenant.admin_key)),
        ):
            assert (await call).status_code == 403

    async def test_unknown_tenant_is_404(self, client: httpx.AsyncClient, factory: Factory) -> None:
        token = await _operator_token(client, factory)
        assert (
            await client.get("/api/admin/tenants/ten_nope", headers=bearer(token))
        ).status_code == 404
