from __future__ import annotations

import base64

import httpx

from custos.auth.scopes import Role
from tests.factories import Factory, bearer

TOKEN = "/api/v1/oauth/token"


class TestPasswordGrant:
    async def test_form_body_gives_tokens_and_can_narrow_the_scope(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        full = await client.post(
            TOKEN,
            data={
                "grant_type": "password",
                "username": tenant.admin.email,
                "password": tenant.admin.password,
            },
        )
        assert full.status_code == 200
        assert full.json()["token_type"] == "bearer"
        assert "users:write" in full.json()["scope"].split()
        narrow = await client.post(
            TOKEN,
            data={
                "grant_type": "password",
                "username": tenant.admin.email,
                "password": tenant.admin.password,
                "scope": "users:read",
            },
        )
        assert narrow.json()["scope"] == "users:read"
        headers = bearer(narrow.json()["access_token"])
        assert (await client.get("/api/v1/users", headers=headers)).status_code == 200
        assert (await client.get("/api/v1/audit", headers=headers)).status_code == 403

    async def test_a_scope_beyond_the_role_is_invalid_scope(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        viewer = await factory.user(tenant.id, tenant.slug, Role.viewer)
        response = await client.post(
            TOKEN,
            data={
                "grant_type": "password",
                "username": viewer.email,
                "password": viewer.password,
                "scope": "users:write",
            },
        )
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_scope"

    async def test_wrong_password_is_invalid_grant(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        response = await client.post(
            TOKEN,
            data={"grant_type": "password", "username": tenant.admin.email, "password": "x"},
        )
        assert response.status_code == 400
        body = response.json()
        assert body["error"] == "invalid_grant"
        assert body["error_description"]
        assert response.headers["content-type"] == "application/problem+json"


class TestRefreshGrant:
    async def test_refresh_token_grant_rotates(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        first = (
            await client.post(
                TOKEN,
                data={
                    "grant_type": "password",
                    "username": tenant.admin.email,
                    "password": tenant.admin.password,
                },
            )
        ).json()
        second = await client.post(
            TOKEN, data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
        )
        assert second.status_code == 200
        replay = await client.post(
            TOKEN, data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
        )
        assert replay.json()["error"] == "invalid_grant"


class TestClientCredentials:
    async def _key(self, client: httpx.AsyncClient, admin_key: str) -> dict[str, str]:
        response = await client.post(
            "/api/v1/api-keys",
            json={"name": "machine", "scopes": ["users:read", "audit:read"]},
            headers=bearer(admin_key),
        )
        body: dict[str, str] = response.json()
        return body

    async def test_api_key_as_client_in_the_body_or_basic_auth(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        key = await self._key(client, tenant.admin_key)
        in_body = await client.post(
            TOKEN,
            data={
                "grant_type": "client_credentials",
                "client_id": key["id"],
                "client_secret": key["key"],
                "scope": "users:read",
            },
        )
        assert in_body.status_code == 200
        assert "refresh_token" not in in_body.json() or in_body.json()["refresh_token"] is None
        token = in_body.json()["access_token"]
        assert (await client.get("/api/v1/users", headers=bearer(token))).status_code == 200
        assert (await client.get("/api/v1/audit", headers=bearer(token))).status_code == 403
        basic = base64.b64encode(f"{key['id']}:{key['key']}".encode()).decode()
        via_basic = await client.post(
            TOKEN,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
        )
        assert via_basic.status_code == 200
        assert via_basic.json()["scope"] == "audit:read users:read"

    async def test_revoking_the_key_kills_its_tokens(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        key = await self._key(client, tenant.admin_key)
        token = (
            await client.post(
                TOKEN,
                data={
                    "grant_type": "client_credentials",
                    "client_id": key["id"],
                    "client_secret": key["key"],
                },
            )
        ).json()["access_token"]
        await client.delete(f"/api/v1/api-keys/{key['id']}", headers=bearer(tenant.admin_key))
        assert (await client.get("/api/v1/users", headers=bearer(token))).status_code == 401

    async def test_wrong_client_is_401_invalid_client(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        key = await self._key(client, tenant.admin_key)
        for client_id, secret in ((key["id"], tenant.admin_key), ("key_nope", key["key"])):
            response = await client.post(
                TOKEN,
                data={
                    "grant_type": "client_credentials",
                    "client_id": client_id,
                    "client_secret": secret,
                },
            )
            assert response.status_code == 401
            assert response.json()["error"] == "invalid_client"
        garbled = await client.post(
            TOKEN,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": "Basic !!!"},
        )
        assert garbled.json()["error"] == "invalid_client"

    async def test_unknown_grant_and_missing_fields(self, client: httpx.AsyncClient) -> None:
        unknown = await client.post(TOKEN, data={"grant_type": "implicit"})
        assert unknown.json()["error"] == "unsupported_grant_type"
        missing = await client.post(TOKEN, data={"grant_type": "password"})
        assert missing.json()["error"] == "invalid_request"
        no_grant = await client.post(TOKEN, data={})
        assert no_grant.status_code == 422
