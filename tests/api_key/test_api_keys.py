from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import sqlalchemy as sa

from custos.auth.scopes import Role
from custos.models import ApiKey
from custos.runtime import Runtime
from tests.factories import Factory, bearer, login


async def _create(
    client: httpx.AsyncClient, token: str, scopes: list[str], **extra: object
) -> httpx.Response:
    return await client.post(
        "/api/v1/api-keys",
        json={"name": "integration", "scopes": scopes, **extra},
        headers=bearer(token),
    )


class TestCreate:
    async def test_the_secret_is_shown_once_and_stored_only_hashed(
        self, client: httpx.AsyncClient, factory: Factory, runtime: Runtime
    ) -> None:
        tenant = await factory.tenant()
        response = await _create(client, tenant.admin_key, ["users:read"])
        assert response.status_code == 201
        body = response.json()
        secret = body["key"]
        assert secret.startswith("cst_live_")
        assert body["display_prefix"] == secret[:13]
        again = await client.get(f"/api/v1/api-keys/{body['id']}", headers=bearer(secret))
        assert again.status_code == 403  # users:read only
        listed = await client.get("/api/v1/api-keys", headers=bearer(tenant.admin_key))
        assert secret not in listed.text
        async with runtime.db.transaction(system=True, write=False) as session:
            row = await session.get(ApiKey, body["id"])
            assert row is not None
            assert secret not in (row.key_hash, row.display_prefix)
            assert len(row.key_hash) == 64
        me = await client.get("/api/v1/auth/me", headers=bearer(secret))
        assert me.json()["scopes"] == ["users:read"]

    async def test_scopes_never_exceed_the_creators(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        developer = await factory.user(tenant.id, tenant.slug, Role.developer)
        token = (await login(client, developer))["access_token"]
        refused = await _create(client, token, ["users:write"])
        assert refused.status_code == 403
        allowed = await _create(client, token, ["customers:read", "customers:write"])
        assert allowed.status_code == 201
        narrow_key = allowed.json()["key"]
        # A key cannot mint a wider key either (it lacks api_keys:write altogether here).
        assert (await _create(client, narrow_key, ["customers:read"])).status_code == 403

    async def test_unknown_scopes_and_past_expiry_are_422(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        assert (await _create(client, tenant.admin_key, ["root:all"])).status_code == 422
        past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
        assert (
            await _create(client, tenant.admin_key, ["users:read"], expires_at=past)
        ).status_code == 422
        naive = datetime.now().replace(microsecond=0).isoformat()
        assert (
            await _create(client, tenant.admin_key, ["users:read"], expires_at=naive)
        ).status_code == 422
        assert (await _create(client, tenant.admin_key, [])).status_code == 422


class TestUse:
    async def test_expired_key_is_refused(
        self, client: httpx.AsyncClient, factory: Factory, runtime: Runtime
    ) -> None:
        tenant = await factory.tenant()
        body = (await _create(client, tenant.admin_key, ["users:read"])).json()
        assert (await client.get("/api/v1/users", headers=bearer(body["key"]))).status_code == 200
        async with runtime.db.transaction(system=True) as session:
            await session.execute(
                sa.update(ApiKey)
                .where(ApiKey.id == body["id"])
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        # The database changed behind the cache's back; the broadcast is what the API does.
        await runtime.credentials.invalidate({f"key:{body['id']}"})
        assert (await client.get("/api/v1/users", headers=bearer(body["key"]))).status_code == 401

    async def test_malformed_and_mistyped_keys_are_401(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        key = tenant.admin_key
        flipped = key[:-1] + ("A" if key[-1] != "A" else "B")  # breaks the checksum
        for candidate in (flipped, key[:-2], key + "x", "cst_live_", "cst_test_" + key[9:]):
            response = await client.get("/api/v1/auth/me", headers=bearer(candidate))
            assert response.status_code == 401, candidate

    async def test_last_used_at_is_recorded_without_a_write_per_request(
        self, client: httpx.AsyncClient, factory: Factory, runtime: Runtime
    ) -> None:
        tenant = await factory.tenant()
        body = (await _create(client, tenant.admin_key, ["users:read"])).json()
        assert body["last_used_at"] is None
        for _ in range(3):
            await client.get("/api/v1/users", headers=bearer(body["key"]))
        await runtime.last_used.flush()
        fetched = await client.get(
            f"/api/v1/api-keys/{body['id']}", headers=bearer(tenant.admin_key)
        )
        assert fetched.json()["last_used_at"] is not None
        assert fetched.json()["updated_at"] == body["updated_at"]


class TestRevokeAndRotate:
    async def test_revoked_key_stops_at_once(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        body = (await _create(client, tenant.admin_key, ["users:read"])).json()
        headers = bearer(body["key"])
        assert (await client.get("/api/v1/users", headers=headers)).status_code == 200
        revoked = await client.delete(
            f"/api/v1/api-keys/{body['id']}", headers=bearer(tenant.admin_key)
        )
        assert revoked.status_code == 200
        assert revoked.json()["revoked_at"] is not None
        assert (await client.get("/api/v1/users", headers=headers)).status_code == 401
        listed = await client.get("/api/v1/api-keys", headers=bearer(tenant.admin_key))
        assert body["id"] not in listed.text
        with_revoked = await client.get(
            "/api/v1/api-keys", params={"include_revoked": "true"}, headers=bearer(tenant.admin_key)
        )
        assert body["id"] in with_revoked.text
        rotate = await client.post(
            f"/api/v1/api-keys/{body['id']}/rotate", headers=bearer(tenant.admin_key)
        )
        assert rotate.status_code == 409

    async def test_rotation_keeps_the_old_secret_for_the_grace_period_only(
        self, client: httpx.AsyncClient, factory: Factory, runtime: Runtime
    ) -> None:
        tenant = await factory.tenant()
        body = (await _create(client, tenant.admin_key, ["users:read"])).json()
        old = body["key"]
        rotated = await client.post(
            f"/api/v1/api-keys/{body['id']}/rotate",
            json={"grace_period_seconds": 3600},
            headers=bearer(tenant.admin_key),
        )
        assert rotated.status_code == 200
        new = rotated.json()["key"]
        assert new != old
        assert rotated.json()["previous_valid_until"] is not None
        for secret in (old, new):
            assert (await client.get("/api/v1/users", headers=bearer(secret))).status_code == 200
        # End the grace period in the database, as the clock would.
        async with runtime.db.transaction(system=True) as session:
            await session.execute(
                sa.update(ApiKey)
                .where(ApiKey.id == body["id"])
                .values(previous_valid_until=datetime.now(UTC) - timedelta(seconds=1))
            )
        await runtime.credentials.invalidate({f"key:{body['id']}"})
        assert (await client.get("/api/v1/users", headers=bearer(old))).status_code == 401
        assert (await client.get("/api/v1/users", headers=bearer(new))).status_code == 200

    async def test_rotation_without_grace_ends_the_old_secret_now(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        body = (await _create(client, tenant.admin_key, ["users:read"])).json()
        rotated = await client.post(
            f"/api/v1/api-keys/{body['id']}/rotate",
            json={"grace_period_seconds": 0},
            headers=bearer(tenant.admin_key),
        )
        assert (await client.get("/api/v1/users", headers=bearer(body["key"]))).status_code == 401
        new = rotated.json()["key"]
        assert (await client.get("/api/v1/users", headers=bearer(new))).status_code == 200

    async def test_grace_period_is_bounded(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        body = (await _create(client, tenant.admin_key, ["users:read"])).json()
        response = await client.post(
            f"/api/v1/api-keys/{body['id']}/rotate",
            json={"grace_period_seconds": 30 * 86_400},
            headers=bearer(tenant.admin_key),
        )
        assert response.status_code == 422

    async def test_update_can_narrow_scopes_and_takes_effect_at_once(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        body = (await _create(client, tenant.admin_key, ["users:read", "audit:read"])).json()
        assert (await client.get("/api/v1/audit", headers=bearer(body["key"]))).status_code == 200
        changed = await client.patch(
            f"/api/v1/api-keys/{body['id']}",
            json={"scopes": ["users:read"], "name": "narrower"},
            headers=bearer(tenant.admin_key),
        )
        assert changed.status_code == 200
        assert changed.json()["name"] == "narrower"
        assert (await client.get("/api/v1/audit", headers=bearer(body["key"]))).status_code == 403


class TestPlatformIssuedKeys:
    async def test_operator_issues_a_key_for_a_tenant(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        operator = await factory.platform_admin()
        token = (await login(client, operator))["access_token"]
        tenant = await factory.tenant()
        response = await client.post(
            f"/api/admin/tenants/{tenant.id}/api-keys",
            json={"name": "provisioned", "scopes": ["users:read"]},
            headers=bearer(token),
        )
        assert response.status_code == 201
        key = response.json()["key"]
        me = await client.get("/api/v1/auth/me", headers=bearer(key))
        assert me.json()["tenant_id"] == tenant.id
        listed = await client.get(f"/api/admin/tenants/{tenant.id}/api-keys", headers=bearer(token))
        assert response.json()["id"] in listed.text
        missing = await client.post(
            "/api/admin/tenants/ten_nope/api-keys",
            json={"name": "x", "scopes": ["users:read"]},
            headers=bearer(token),
        )
        assert missing.status_code == 404

    async def test_tenant_admins_cannot_use_the_platform_route(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        response = await client.post(
            f"/api/admin/tenants/{tenant.id}/api-keys",
            json={"name": "x", "scopes": ["users:read"]},
            headers=bearer(tenant.admin_key),
        )
        assert response.status_code == 403
