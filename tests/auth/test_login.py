from __future__ import annotations

import httpx

from custos.auth.scopes import Role
from tests.factories import Factory, bearer, login


class TestLogin:
    async def test_email_and_password_give_an_access_and_refresh_token(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        tokens = await login(client, tenant.admin)
        assert tokens["token_type"] == "bearer"
        assert tokens["expires_in"] == 900
        assert tokens["refresh_token"].startswith("crt_")
        me = await client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
        assert me.status_code == 200
        body = me.json()
        assert body["id"] == tenant.admin.id
        assert body["tenant_slug"] == tenant.slug
        assert body["email"] == tenant.admin.email
        assert "users:write" in body["scopes"]

    async def test_seed_era_username_field_is_accepted(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        response = await client.post(
            "/api/v1/auth/login",
            json={"username": tenant.admin.email.upper(), "password": tenant.admin.password},
        )
        assert response.status_code == 200

    async def test_wrong_password_and_unknown_email_look_the_same(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        wrong = await client.post(
            "/api/v1/auth/login", json={"email": tenant.admin.email, "password": "nope"}
        )
        unknown = await client.post(
            "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "nope"}
        )
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json()["detail"] == unknown.json()["detail"]
        assert wrong.headers["content-type"] == "application/problem+json"

    async def test_email_in_two_tenants_needs_the_tenant_slug(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        first, second = await factory.tenant(), await factory.tenant()
        email = "shared@example.com"
        await factory.user(first.id, first.slug, Role.viewer, email=email)
        await factory.user(second.id, second.slug, Role.developer, email=email)
        password = first.admin.password
        ambiguous = await client.post(
            "/api/v1/auth/login", json={"email": email, "password": password}
        )
        assert ambiguous.status_code == 422
        assert ambiguous.json()["errors"][0]["loc"] == ["body", "tenant"]
        chosen = await client.post(
            "/api/v1/auth/login",
            json={"email": email, "password": password, "tenant": second.slug},
        )
        assert chosen.status_code == 200
        me = await client.get("/api/v1/auth/me", headers=bearer(chosen.json()["access_token"]))
        assert me.json()["tenant_id"] == second.id
        assert me.json()["role"] == "developer"

    async def test_deactivated_user_cannot_sign_in(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        viewer = await factory.user(tenant.id, tenant.slug, Role.viewer)
        changed = await client.patch(
            f"/api/v1/users/{viewer.id}",
            json={"is_active": False},
            headers=bearer(tenant.admin_key),
        )
        assert changed.status_code == 200
        response = await client.post(
            "/api/v1/auth/login", json={"email": viewer.email, "password": viewer.password}
        )
        assert response.status_code == 401

    async def test_missing_fields_are_a_422_naming_them(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api/v1/auth/login", json={"password": "x"})
        assert response.status_code == 422
        assert response.json()["type"] == "urn:custos:problem:validation-error"


class TestRefresh:
    async def test_refresh_rotates_the_token(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        first = await login(client, tenant.admin)
        second = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )
        assert second.status_code == 200
        assert second.json()["refresh_token"] != first["refresh_token"]
        me = await client.get("/api/v1/auth/me", headers=bearer(second.json()["access_token"]))
        assert me.status_code == 200

    async def test_reusing_a_rotated_token_revokes_the_whole_family(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        first = await login(client, tenant.admin)
        second = (
            await client.post(
                "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
            )
        ).json()
        replay = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )
        assert replay.status_code == 401
        # The legitimate newest refresh token and its access token are dead too.
        newest = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
        )
        assert newest.status_code == 401
        me = await client.get("/api/v1/auth/me", headers=bearer(second["access_token"]))
        assert me.status_code == 401
        # A different login is a different family and keeps working.
        other = await login(client, tenant.admin)
        assert (
            await client.get("/api/v1/auth/me", headers=bearer(other["access_token"]))
        ).status_code == 200
        audit = await client.get(
            "/api/v1/audit",
            params={"action": "auth.refresh_reuse_detected"},
            headers=bearer(tenant.admin_key),
        )
        assert len(audit.json()["items"]) == 1

    async def test_unknown_refresh_token_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api/v1/auth/refresh", json={"refresh_token": "crt_nope"})
        assert response.status_code == 401


class TestLogout:
    async def test_logout_ends_the_session_at_once(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        tokens = await login(client, tenant.admin)
        headers = bearer(tokens["access_token"])
        assert (await client.get("/api/v1/auth/me", headers=headers)).status_code == 200
        assert (await client.post("/api/v1/auth/logout", headers=headers)).status_code == 204
        assert (await client.get("/api/v1/auth/me", headers=headers)).status_code == 401
        refreshed = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 401

    async def test_api_keys_have_no_session_to_end(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        response = await client.post("/api/v1/auth/logout", headers=bearer(tenant.admin_key))
        assert response.status_code == 403


class TestPasswordChange:
    async def test_change_ends_other_sessions_and_keeps_this_one(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        this = await login(client, tenant.admin)
        other = await login(client, tenant.admin)
        response = await client.post(
            "/api/v1/auth/password",
            json={"current_password": tenant.admin.password, "new_password": "a-new-long-secret"},
            headers=bearer(this["access_token"]),
        )
        assert response.status_code == 204
        assert (
            await client.get("/api/v1/auth/me", headers=bearer(this["access_token"]))
        ).status_code == 200
        assert (
            await client.get("/api/v1/auth/me", headers=bearer(other["access_token"]))
        ).status_code == 401
        old = await client.post(
            "/api/v1/auth/login",
            json={"email": tenant.admin.email, "password": tenant.admin.password},
        )
        assert old.status_code == 401

    async def test_wrong_current_password_is_422(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        tokens = await login(client, tenant.admin)
        response = await client.post(
            "/api/v1/auth/password",
            json={"current_password": "wrong", "new_password": "a-new-long-secret"},
            headers=bearer(tokens["access_token"]),
        )
        assert response.status_code == 422
