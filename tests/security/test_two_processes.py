"""Revocation, suspension and demotion reach every server process within a second.

Two real server processes share PostgreSQL and Redis, as in production. A change made
through one must stop the other from honouring the old credential or role within 1 s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx

from tests.factories import Factory, bearer, login

BOUND_SECONDS = 1.0


async def _time_until(check: Callable[[], Awaitable[bool]], limit: float = 3.0) -> float:
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > limit:
            return float("inf")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


class TestAcrossProcesses:
    async def test_a_revoked_key_stops_working_on_the_other_process(
        self, servers: list[str], factory: Factory
    ) -> None:
        first, second = servers
        tenant = await factory.tenant()
        async with httpx.AsyncClient() as http:
            created = await http.post(
                f"{first}/api/v1/api-keys",
                json={"name": "doomed", "scopes": ["users:read"]},
                headers=bearer(tenant.admin_key),
            )
            key = created.json()
            # Both processes have the key cached before the revocation.
            for url in servers:
                ok = await http.get(f"{url}/api/v1/users", headers=bearer(key["key"]))
                assert ok.status_code == 200
            revoked = await http.delete(
                f"{first}/api/v1/api-keys/{key['id']}", headers=bearer(tenant.admin_key)
            )
            assert revoked.status_code == 200

            async def refused() -> bool:
                r = await http.get(f"{second}/api/v1/users", headers=bearer(key["key"]))
                return r.status_code == 401

            elapsed = await _time_until(refused)
        print(f"key revocation reached the other process in {elapsed * 1000:.0f} ms")
        assert elapsed < BOUND_SECONDS

    async def test_a_suspended_tenant_is_locked_out_on_the_other_process(
        self, servers: list[str], factory: Factory
    ) -> None:
        first, second = servers
        operator = await factory.platform_admin()
        tenant = await factory.tenant()
        async with httpx.AsyncClient() as http:
            op_token = (await login(http_client(http, first), operator))["access_token"]
            user_token = (await login(http_client(http, second), tenant.admin))["access_token"]
            for credential in (tenant.admin_key, user_token):
                r = await http.get(f"{second}/api/v1/auth/me", headers=bearer(credential))
                assert r.status_code == 200
            suspended = await http.patch(
                f"{first}/api/admin/tenants/{tenant.id}",
                json={"status": "suspended"},
                headers=bearer(op_token),
            )
            assert suspended.status_code == 200

            async def locked_out() -> bool:
                statuses = [
                    (
                        await http.get(f"{second}/api/v1/auth/me", headers=bearer(credential))
                    ).status_code
                    for credential in (tenant.admin_key, user_token)
                ]
                return statuses == [401, 401]

            elapsed = await _time_until(locked_out)
        print(f"suspension reached the other process in {elapsed * 1000:.0f} ms")
        assert elapsed < BOUND_SECONDS

    async def test_a_demoted_user_loses_the_scope_on_the_other_process(
        self, servers: list[str], factory: Factory
    ) -> None:
        first, second = servers
        tenant = await factory.tenant()
        from custos.auth.scopes import Role

        colleague = await factory.user(tenant.id, tenant.slug, Role.admin)
        async with httpx.AsyncClient() as http:
            token = (await login(http_client(http, second), colleague))["access_token"]
            assert (
                await http.get(f"{second}/api/v1/audit", headers=bearer(token))
            ).status_code == 200
            demoted = await http.patch(
                f"{first}/api/v1/users/{colleague.id}",
                json={"role": "viewer"},
                headers=bearer(tenant.admin_key),
            )
            assert demoted.status_code == 200

            async def refused() -> bool:
                r = await http.get(f"{second}/api/v1/audit", headers=bearer(token))
                return r.status_code == 403

            elapsed = await _time_until(refused)
        print(f"demotion reached the other process in {elapsed * 1000:.0f} ms")
        assert elapsed < BOUND_SECONDS


def http_client(http: httpx.AsyncClient, base_url: str) -> httpx.AsyncClient:
    """`login()` takes a client with a base URL; share the connection pool of `http`."""
    return httpx.AsyncClient(base_url=base_url, transport=http._transport)


class TestCustomerRacesAcrossProcesses:
    async def test_one_email_created_at_once_through_both_processes_makes_one_record(
        self, servers: tuple[str, str], factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        headers = bearer(tenant.admin_key)
        body = {"full_name": "Raced", "email": "raced@example.com"}
        async with httpx.AsyncClient(timeout=10) as http:
            # Half go the one-round-trip way, half the generic way (an Idempotency-Key each).
            answers = await asyncio.gather(
                *(
                    http.post(
                        f"{servers[n % 2]}/api/v1/customers",
                        json=body,
                        headers={**headers, "Idempotency-Key": f"k{n}"} if n % 4 >= 2 else headers,
                    )
                    for n in range(16)
                )
            )
            statuses = sorted(r.status_code for r in answers)
            listed = await http.get(
                f"{servers[0]}/api/v1/customers", params={"q": "raced@example.com"}, headers=headers
            )
        assert statuses == [201] + [409] * 15, statuses
        conflicts = [r.json() for r in answers if r.status_code == 409]
        assert all(c["errors"][0]["loc"] == ["body", "email"] for c in conflicts)
        assert [c["email"] for c in listed.json()["items"]] == ["raced@example.com"]
