"""Platform operators override a tenant's plan limits, window by window."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from custos.config import Settings
from custos.runtime import Runtime
from tests.conftest import runtime_with
from tests.factories import Factory, access_token, bearer, client_for


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[Runtime]:
    async with runtime_with(
        settings.database_url,
        rate_limit_plan_starter="6/minute;1000/hour",
        rate_limit_plan_pro="50/minute",
    ) as runtime:
        yield runtime


async def operator_token(factory: Factory, client: httpx.AsyncClient) -> dict[str, str]:
    return bearer(await access_token(client, await factory.platform_admin()))


class TestOverrides:
    async def test_the_plans_limits_are_shown_until_overridden(
        self, limited: Runtime, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        async with client_for(limited) as client:
            operator = await operator_token(factory, client)
            path = f"/api/admin/tenants/{tenant.id}/rate-limits"
            shown = await client.get(path, headers=operator)
        assert shown.status_code == 200
        body = shown.json()
        assert body["plan"] == "starter"
        assert body["overrides"] is None
        assert [(x["limit"], x["window_seconds"]) for x in body["plan_limits"]] == [
            (6, 60),
            (1000, 3600),
        ]
        assert body["effective"] == body["plan_limits"]

    async def test_an_override_replaces_its_window_only_and_takes_effect_at_once(
        self, limited: Runtime, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        async with client_for(limited) as client:
            operator = await operator_token(factory, client)
            # The tenant's credential is cached before the change.
            assert (
                await client.get("/api/v1/auth/me", headers=bearer(tenant.admin_key))
            ).status_code == 200
            put = await client.put(
                f"/api/admin/tenants/{tenant.id}/rate-limits",
                json={"per_minute": 3, "per_day": 5000},
                headers=operator,
            )
            statuses = [
                (await client.get("/api/v1/auth/me", headers=bearer(tenant.admin_key))).status_code
                for _ in range(4)
            ]
        assert put.status_code == 200
        effective = {x["window_seconds"]: x["limit"] for x in put.json()["effective"]}
        assert effective == {60: 3, 3600: 1000, 86_400: 5000}
        assert put.json()["overrides"] == {"per_minute": 3, "per_hour": None, "per_day": 5000}
        assert statuses == [200, 200, 200, 429]

    async def test_removing_the_overrides_restores_the_plan(
        self, limited: Runtime, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        async with client_for(limited) as client:
            operator = await operator_token(factory, client)
            path = f"/api/admin/tenants/{tenant.id}/rate-limits"
            await client.put(path, json={"per_minute": 40}, headers=operator)
            removed = await client.delete(path, headers=operator)
            me = await client.get("/api/v1/auth/me", headers=bearer(tenant.admin_key))
        assert removed.status_code == 200
        assert removed.json()["overrides"] is None
        assert int(me.headers["x-ratelimit-limit"]) == 6

    async def test_each_change_is_audited_in_the_tenants_log(
        self, factory: Factory, client: httpx.AsyncClient
    ) -> None:
        tenant = await factory.tenant()
        operator = await operator_token(factory, client)
        path = f"/api/admin/tenants/{tenant.id}/rate-limits"
        assert (await client.put(path, json={"per_hour": 90}, headers=operator)).status_code == 200
        assert (await client.delete(path, headers=operator)).status_code == 200
        audit = await client.get(
            "/api/v1/audit",
            params={"action": "tenant.rate_limits_updated"},
            headers=bearer(tenant.admin_key),
        )
        changes = [e["changes"]["rate_limits"] for e in audit.json()["items"]]
        assert changes == [
            {"from": {"per_hour": 90}, "to": None},
            {"from": None, "to": {"per_hour": 90}},
        ]

    async def test_only_platform_operators_may_and_unknown_tenants_are_404(
        self, factory: Factory, client: httpx.AsyncClient
    ) -> None:
        tenant = await factory.tenant()
        path = f"/api/admin/tenants/{tenant.id}/rate-limits"
        own_admin = await client.put(path, json={"per_minute": 1}, headers=bearer(tenant.admin_key))
        operator = await operator_token(factory, client)
        missing = await client.get(
            "/api/admin/tenants/ten_00000000000000000000000000/rate-limits", headers=operator
        )
        invalid = await client.put(path, json={"per_minute": 0}, headers=operator)
        assert own_admin.status_code == 403
        assert missing.status_code == 404
        assert invalid.status_code == 422


class TestPlans:
    async def test_a_plan_change_takes_effect_at_once(
        self, limited: Runtime, factory: Factory
    ) -> None:
        tenant = await factory.tenant()  # starter: 6 per minute here
        async with client_for(limited) as client:
            operator = await operator_token(factory, client)
            before = await client.get("/api/v1/auth/me", headers=bearer(tenant.admin_key))
            changed = await client.patch(
                f"/api/admin/tenants/{tenant.id}", json={"plan": "pro"}, headers=operator
            )
            after = await client.get("/api/v1/auth/me", headers=bearer(tenant.admin_key))
        assert before.headers["x-ratelimit-limit"] == "6"
        assert changed.status_code == 200
        assert after.headers["x-ratelimit-limit"] == "50"
