from __future__ import annotations

import httpx
import pytest

from custos.auth.scopes import Role
from tests.factories import Factory, bearer, login


class TestManageUsers:
    async def test_admin_creates_reads_lists_updates_and_deletes(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        admin = bearer(tenant.admin_key)
        created = await client.post(
            "/api/v1/users",
            json={
                "email": "New.Person@Example.com",
                "password": "long-enough-secret",
                "role": "viewer",
            },
            headers=admin,
        )
        assert created.status_code == 201
        user = created.json()
        assert user["email"] == "new.person@example.com"
        assert "password" not in created.text
        assert (await client.get(f"/api/v1/users/{user['id']}", headers=admin)).json() == user
        listed = await client.get("/api/v1/users", params={"role": "viewer"}, headers=admin)
        assert [u["id"] for u in listed.json()["items"]] == [user["id"]]
        patched = await client.patch(
            f"/api/v1/users/{user['id']}",
            json={"role": "developer", "full_name": "N P"},
            headers=admin,
        )
        assert patched.json()["role"] == "developer"
        assert (
            await client.delete(f"/api/v1/users/{user['id']}", headers=admin)
        ).status_code == 204
        assert (await client.get(f"/api/v1/users/{user['id']}", headers=admin)).status_code == 404

    async def test_duplicate_email_in_a_tenant_is_409(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        body = {"email": tenant.admin.email, "password": "long-enough-secret"}
        response = await client.post("/api/v1/users", json=body, headers=bearer(tenant.admin_key))
        assert response.status_code == 409

    @pytest.mark.parametrize(
        "body",
        [
            {"email": "not-an-email", "password": "long-enough-secret"},
            {"email": "a@example.com", "password": "short"},
            {"email": "a@example.com", "password": "long-enough-secret", "role": "god"},
            {"email": "a@example.com", "password": "long-enough-secret", "is_admin": True},
            {"email": "a@example.com", "password": "x" * 1000},
        ],
    )
    async def test_invalid_bodies_are_422(
        self, client: httpx.AsyncClient, factory: Factory, body: dict[str, object]
    ) -> None:
        tenant = await factory.tenant()
        response = await client.post("/api/v1/users", json=body, headers=bearer(tenant.admin_key))
        assert response.status_code == 422
        assert response.json()["errors"]

    async def test_pagination_walks_every_user_once(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        made = {tenant.admin.id}
        for _ in range(4):
            made.add((await factory.user(tenant.id, tenant.slug, Role.viewer)).id)
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (
                await client.get("/api/v1/users", params=params, headers=bearer(tenant.admin_key))
            ).json()
            seen += [u["id"] for u in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(made)
        bad = await client.get(
            "/api/v1/users", params={"cursor": "!!"}, headers=bearer(tenant.admin_key)
        )
        assert bad.status_code == 422
        too_big = await client.get(
            "/api/v1/users", params={"limit": 1001}, headers=bearer(tenant.admin_key)
        )
        assert too_big.status_code == 422


class TestGrantRules:
    async def test_nobody_grants_a_role_wider_than_their_own(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        # A key with users:write but not every admin scope cannot make an admin.
        key = await factory.key(tenant.id, ["users:read", "users:write"])
        response = await client.post(
            "/api/v1/users",
            json={"email": "x@example.com", "password": "long-enough-secret", "role": "admin"},
            headers=bearer(key),
        )
        assert response.status_code == 403
        viewer = await client.post(
            "/api/v1/users",
            json={"email": "y@example.com", "password": "long-enough-secret", "role": "viewer"},
            headers=bearer(key),
        )
        assert viewer.status_code == 403  # a viewer reads customers, which this key cannot
        # The customer role reaches only its own record: granting it widens nobody's access.
        customer = await client.post(
            "/api/v1/users",
            json={"email": "z@example.com", "password": "long-enough-secret", "role": "customer"},
            headers=bearer(key),
        )
        assert customer.status_code == 201

    async def test_lower_roles_cannot_manage_users(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        developer = await factory.user(tenant.id, tenant.slug, Role.developer)
        token = (await login(client, developer))["access_token"]
        response = await client.post(
            "/api/v1/users",
            json={"email": "x@example.com", "password": "long-enough-secret", "role": "viewer"},
            headers=bearer(token),
        )
        assert response.status_code == 403

    async def test_admins_cannot_demote_deactivate_or_delete_themselves(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        token = (await login(client, tenant.admin))["access_token"]
        me = f"/api/v1/users/{tenant.admin.id}"
        for change in ({"role": "viewer"}, {"is_active": False}):
            assert (await client.patch(me, json=change, headers=bearer(token))).status_code == 403
        assert (await client.delete(me, headers=bearer(token))).status_code == 403
        renamed = await client.patch(me, json={"full_name": "Still Me"}, headers=bearer(token))
        assert renamed.status_code == 200

    async def test_demotion_takes_effect_on_the_next_request(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        other_admin = await factory.user(tenant.id, tenant.slug, Role.admin)
        token = (await login(client, other_admin))["access_token"]
        assert (await client.get("/api/v1/audit", headers=bearer(token))).status_code == 200
        await client.patch(
            f"/api/v1/users/{other_admin.id}",
            json={"role": "viewer"},
            headers=bearer(tenant.admin_key),
        )
        assert (await client.get("/api/v1/audit", headers=bearer(token))).status_code == 403

    async def test_setting_a_password_ends_the_users_sessions(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        viewer = await factory.user(tenant.id, tenant.slug, Role.viewer)
        token = (await login(client, viewer))["access_token"]
        await client.patch(
            f"/api/v1/users/{viewer.id}",
            json={"password": "reset-by-the-admin"},
            headers=bearer(tenant.admin_key),
        )
        assert (await client.get("/api/v1/auth/me", headers=bearer(token))).status_code == 401

    async def test_null_for_a_required_field_is_422(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        viewer = await factory.user(tenant.id, tenant.slug, Role.viewer)
        response = await client.patch(
            f"/api/v1/users/{viewer.id}", json={"role": None}, headers=bearer(tenant.admin_key)
        )
        assert response.status_code == 422
