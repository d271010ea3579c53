"""Brute force on sign-in is throttled per IP and per account, and fails open when the
rate-limit store is down."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from custos.config import Settings
from custos.runtime import Runtime
from tests.conftest import runtime_with
from tests.factories import Factory, client_for


@pytest.fixture
async def strict(settings: Settings) -> AsyncIterator[Runtime]:
    async with runtime_with(
        settings.database_url,
        login_rate_per_ip="5/minute",
        login_failures_per_account="3 per 15 minutes",
    ) as runtime:
        yield runtime


async def _login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password})


class TestThrottle:
    async def test_an_account_locks_after_repeated_failures_even_for_the_right_password(
        self, strict: Runtime, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        email = tenant.admin.email
        # Each attempt from another address: the per-account limit is what stops this.
        for _ in range(3):
            async with client_for(strict) as client:
                assert (await _login(client, email, "wrong")).status_code == 401
        async with client_for(strict) as client:
            locked = await _login(client, email, tenant.admin.password)
        assert locked.status_code == 429
        assert int(locked.headers["retry-after"]) > 0
        assert locked.headers["content-type"] == "application/problem+json"

    async def test_one_address_is_limited_across_accounts(
        self, strict: Runtime, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        async with client_for(strict) as client:
            statuses = [
                (await _login(client, f"{secrets.token_hex(6)}@example.com", "guess")).status_code
                for _ in range(7)
            ]
            refused = await _login(client, tenant.admin.email, tenant.admin.password)
        assert statuses[:5] == [401] * 5
        assert statuses[5:] == [429, 429]
        assert refused.status_code == 429

    async def test_the_token_endpoint_is_throttled_too(
        self, strict: Runtime, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        async with client_for(strict) as client:
            statuses = []
            for _ in range(6):
                response = await client.post(
                    "/api/v1/oauth/token",
                    data={
                        "grant_type": "password",
                        "username": tenant.admin.email,
                        "password": "x",
                    },
                )
                statuses.append(response.status_code)
        assert statuses[-1] == 429

    async def test_an_unreachable_store_fails_open(
        self, settings: Settings, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        broken: dict[str, Any] = {"redis_url": "redis://127.0.0.1:1/0"}
        async with (
            runtime_with(settings.database_url, **broken) as runtime,
            client_for(runtime) as client,
        ):
            ok = await _login(client, tenant.admin.email, tenant.admin.password)
        assert ok.status_code == 200
