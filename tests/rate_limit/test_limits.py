"""Rate limits per address, user, API key, tenant plan and globally; the headers on every
response; 429 as problem+json naming the limit, with Retry-After."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from custos.auth.scopes import Role
from custos.config import Settings
from custos.runtime import Runtime
from tests.conftest import runtime_with
from tests.factories import Factory, access_token, bearer, client_for

HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[Runtime]:
    """Small limits for addresses, users and the starter plan."""
    async with runtime_with(
        settings.database_url,
        rate_limit_per_ip="8/minute",
        rate_limit_per_user="6/hour",
        rate_limit_plan_starter="12/minute",
        rate_limit_plan_pro="500/minute",
        max_body_bytes=2048,
    ) as runtime:
        yield runtime


def limit_headers(response: httpx.Response) -> dict[str, int]:
    return {name: int(response.headers[name]) for name in HEADERS}


async def burst(
    client: httpx.AsyncClient, count: int, headers: dict[str, str], path: str = "/api/v1/auth/me"
) -> list[httpx.Response]:
    """`count` requests at once, as a client flooding us would send them."""
    gate = asyncio.Semaphore(16)

    async def one() -> httpx.Response:
        async with gate:
            return await client.get(path, headers=headers)

    return list(await asyncio.gather(*(one() for _ in range(count))))


def assert_refusal(response: httpx.Response, scope: str) -> None:
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    problem: dict[str, Any] = response.json()
    assert problem["type"] == "urn:custos:problem:rate-limited"
    assert problem["rate_limit"]["scope"] == scope
    assert str(problem["rate_limit"]["limit"]) in problem["detail"]
    assert limit_headers(response)["x-ratelimit-remaining"] == 0


class TestHeaders:
    async def test_every_kind_of_response_carries_them(
        self, limited: Runtime, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        key = await factory.key(tenant.id, ["customers:read"], rate_limits={"per_minute": 50})
        async with client_for(limited) as client:
            answers = {
                "ok": await client.get("/api/v1/auth/me", headers=bearer(key)),
                "forbidden": await client.get("/api/v1/users", headers=bearer(key)),
                "not found": await client.get(
                    "/api/v1/customers/cus_00000000000000000000000000", headers=bearer(key)
                ),
                "invalid": await client.get("/api/v1/customers?limit=0", headers=bearer(key)),
                "no route": await client.get("/api/v1/nothing-here"),
                "too large": await client.post(
                    "/api/v1/customers", content=b"x" * 4096, headers=bearer(key)
                ),
                "no credentials": await client.get("/api/v1/users"),
                "public": await client.get("/api/v1/docs/scopes"),
                "health": await client.get("/health"),
            }
        statuses = {name: r.status_code for name, r in answers.items()}
        assert statuses == {
            "ok": 200,
            "forbidden": 403,
            "not found": 404,
            "invalid": 422,
            "no route": 404,
            "too large": 413,
            "no credentials": 401,
            "public": 200,
            "health": 200,
        }
        missing = [name for name, r in answers.items() if not all(h in r.headers for h in HEADERS)]
        assert missing == []

    async def test_they_name_the_tightest_limit_and_count_down(
        self, limited: Runtime, factory: Factory
    ) -> None:
        tenant = await factory.tenant()  # starter: 12 per minute
        key = await factory.key(tenant.id, ["customers:read"], rate_limits={"per_minute": 5})
        roomy = await factory.key(tenant.id, ["customers:read"])
        async with client_for(limited) as client:
            own = [
                limit_headers(await client.get("/api/v1/auth/me", headers=bearer(key)))
                for _ in range(3)
            ]
            # The key without limits of its own is held by its tenant's plan, which the
            # first key's requests count against too.
            tenant_view = limit_headers(await client.get("/api/v1/auth/me", headers=bearer(roomy)))
        assert [h["x-ratelimit-limit"] for h in own] == [5, 5, 5]
        assert [h["x-ratelimit-remaining"] for h in own] == [4, 3, 2]
        assert all(0 < h["x-ratelimit-reset"] <= 60 for h in own)
        assert tenant_view["x-ratelimit-limit"] == 12
        assert tenant_view["x-ratelimit-remaining"] == 12 - 4


class TestLimits:
    @pytest.mark.parametrize("limit", [40, 200])
    async def test_a_burst_at_twice_a_limit_gets_the_limit_and_429s(
        self, limited: Runtime, factory: Factory, limit: int
    ) -> None:
        tenant = await factory.tenant(plan="pro")  # 500 per minute: the key's limit binds
        key = await factory.key(tenant.id, ["customers:read"], rate_limits={"per_minute": limit})
        async with client_for(limited) as client:
            answers = await burst(client, 2 * limit, bearer(key))
        allowed = sum(r.status_code == 200 for r in answers)
        print(f"limit {limit}: a burst of {2 * limit} allowed {allowed}")
        assert abs(allowed - limit) <= 0.05 * limit
        refused = [r for r in answers if r.status_code != 200]
        assert len(refused) == 2 * limit - allowed
        for response in refused:
            assert_refusal(response, "api_key")

    async def test_a_tenants_plan_binds_all_its_keys_together(
        self, limited: Runtime, factory: Factory
    ) -> None:
        tenant = await factory.tenant()  # starter: 12 per minute
        keys = [await factory.key(tenant.id, ["customers:read"]) for _ in range(3)]
        other = await factory.tenant()
        async with client_for(limited) as client:
            statuses = [
                (await client.get("/api/v1/auth/me", headers=bearer(keys[i % 3]))).status_code
                for i in range(15)
            ]
            refused = await client.get("/api/v1/auth/me", headers=bearer(keys[0]))
            elsewhere = await client.get("/api/v1/auth/me", headers=bearer(other.admin_key))
        assert statuses == [200] * 12 + [429] * 3
        assert_refusal(refused, "tenant")
        assert elsewhere.status_code == 200

    async def test_a_user_is_limited_on_their_own(
        self, limited: Runtime, factory: Factory, raw_client: httpx.AsyncClient
    ) -> None:
        tenant = await factory.tenant(plan="pro")
        account = await factory.user(tenant.id, tenant.slug, Role.viewer)
        token = await access_token(raw_client, account)
        async with client_for(limited) as client:
            statuses = [
                (await client.get("/api/v1/auth/me", headers=bearer(token))).status_code
                for _ in range(8)
            ]
            refused = await client.get("/api/v1/auth/me", headers=bearer(token))
            colleague = await client.get("/api/v1/auth/me", headers=bearer(tenant.admin_key))
        assert statuses == [200] * 6 + [429] * 2
        assert_refusal(refused, "user")
        assert colleague.status_code == 200

    async def test_an_address_is_limited_on_routes_without_credentials(
        self, limited: Runtime
    ) -> None:
        async with client_for(limited) as client, client_for(limited) as neighbour:
            statuses = [(await client.get("/api/v1/docs/scopes")).status_code for _ in range(10)]
            refused = await client.get("/api/v1/docs/scopes")
            other_address = await neighbour.get("/api/v1/docs/scopes")
            probes = [(await client.get("/health")).status_code for _ in range(3)]
        assert statuses == [200] * 8 + [429] * 2
        assert_refusal(refused, "ip")
        assert other_address.status_code == 200
        assert probes == [200] * 3  # health checks are never refused

    async def test_guessing_keys_counts_against_the_address(
        self, limited: Runtime, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        async with client_for(limited) as client:
            guesses = [
                (await client.get("/api/v1/auth/me", headers=bearer(f"cst_live_{i}"))).status_code
                for i in range(10)
            ]
            # Once over, even a good key from that address is not the problem: the address is.
            good = await client.get("/api/v1/auth/me", headers=bearer(tenant.admin_key))
        assert guesses == [401] * 8 + [429] * 2
        assert good.status_code == 200

    async def test_the_global_ceiling_holds_for_everyone(
        self, settings: Settings, factory: Factory
    ) -> None:
        # An amount no other test uses: the global counter is shared by the whole run.
        first, second = await factory.tenant(), await factory.tenant()
        async with (
            runtime_with(settings.database_url, rate_limit_global="9/minute") as runtime,
            client_for(runtime) as client,
        ):
            statuses = [
                (await client.get("/api/v1/auth/me", headers=bearer(tenant.admin_key))).status_code
                for tenant in [first, second] * 6
            ]
            refused = await client.get("/api/v1/docs/scopes")
            health = await client.get("/health")
        assert statuses == [200] * 9 + [429] * 3
        assert_refusal(refused, "global")
        assert health.status_code == 200
        assert limit_headers(health)["x-ratelimit-limit"] == 9

    async def test_limits_can_be_switched_off(self, settings: Settings) -> None:
        async with (
            runtime_with(
                settings.database_url, rate_limits_enabled=False, rate_limit_per_ip="1/minute"
            ) as runtime,
            client_for(runtime) as client,
        ):
            answers = [await client.get("/api/v1/docs/scopes") for _ in range(3)]
        assert [r.status_code for r in answers] == [200] * 3
        assert "x-ratelimit-limit" not in answers[-1].headers


class TestSignIn:
    async def test_sign_in_answers_show_the_stricter_sign_in_limit(
        self, settings: Settings, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        async with (
            runtime_with(
                settings.database_url, rate_limit_per_ip="8/minute", login_rate_per_ip="3/minute"
            ) as runtime,
            client_for(runtime) as client,
        ):
            attempts = [
                await client.post(
                    "/api/v1/auth/login",
                    json={"email": tenant.admin.email, "password": "wrong-password"},
                )
                for _ in range(4)
            ]
        assert [r.status_code for r in attempts] == [401, 401, 401, 429]
        assert [limit_headers(r)["x-ratelimit-limit"] for r in attempts] == [3, 3, 3, 3]
        assert [limit_headers(r)["x-ratelimit-remaining"] for r in attempts] == [2, 1, 0, 0]
        assert_refusal(attempts[-1], "sign_in")


class TestKeyLimits:
    async def test_set_at_creation_shown_and_changed_by_update(
        self, limited: Runtime, factory: Factory, client: httpx.AsyncClient
    ) -> None:
        tenant = await factory.tenant(plan="pro")
        admin = bearer(tenant.admin_key)
        created = await client.post(
            "/api/v1/api-keys",
            json={
                "name": "metered",
                "scopes": ["customers:read"],
                "rate_limits": {"per_minute": 3},
            },
            headers=admin,
        )
        assert created.status_code == 201
        body = created.json()
        assert body["rate_limits"] == {"per_minute": 3, "per_hour": None, "per_day": None}
        own = bearer(body["key"])
        async with client_for(limited) as limited_client:
            before = [
                (await limited_client.get("/api/v1/auth/me", headers=own)).status_code
                for _ in range(4)
            ]
            # Changed through the same process, whose cached credential it replaces (other
            # processes hear of it over Redis: tests/security/test_two_processes.py).
            changed = await limited_client.patch(
                f"/api/v1/api-keys/{body['id']}",
                json={"rate_limits": {"per_minute": 10, "per_day": 1000}},
                headers=admin,
            )
            after = await limited_client.get("/api/v1/auth/me", headers=bearer(body["key"]))
            removed = await limited_client.patch(
                f"/api/v1/api-keys/{body['id']}", json={"rate_limits": None}, headers=admin
            )
        assert before == [200, 200, 200, 429]
        assert changed.status_code == 200
        assert changed.json()["rate_limits"] == {
            "per_minute": 10,
            "per_hour": None,
            "per_day": 1000,
        }
        # The change reaches the cached credential at once: a new limit, a new window.
        assert after.status_code == 200
        assert limit_headers(after)["x-ratelimit-limit"] == 10
        assert removed.json()["rate_limits"] is None
        audit = await client.get("/api/v1/audit", params={"target_id": body["id"]}, headers=admin)
        changes = [e["changes"].get("rate_limits") for e in audit.json()["items"]]
        assert {"from": {"per_minute": 3}, "to": {"per_minute": 10, "per_day": 1000}} in changes

    @pytest.mark.parametrize(
        "limits", [{"per_minute": 0}, {"per_hour": -5}, {"per_day": "lots"}, {"per_week": 5}]
    )
    async def test_nonsense_is_refused(
        self, factory: Factory, client: httpx.AsyncClient, limits: dict[str, Any]
    ) -> None:
        tenant = await factory.tenant()
        response = await client.post(
            "/api/v1/api-keys",
            json={"name": "x", "scopes": ["customers:read"], "rate_limits": limits},
            headers=bearer(tenant.admin_key),
        )
        assert response.status_code == 422
