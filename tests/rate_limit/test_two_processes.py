"""Limits hold across two server processes sharing Redis: a burst spread over both gets the
limit, not twice it."""

from __future__ import annotations

import asyncio

import httpx

from tests.factories import Factory, bearer


async def test_a_burst_over_two_processes_gets_the_limit_once(
    servers: list[str], factory: Factory
) -> None:
    tenant = await factory.tenant(plan="enterprise")
    limit = 60
    key = await factory.key(tenant.id, ["customers:read"], rate_limits={"per_minute": limit})
    gate = asyncio.Semaphore(16)
    async with httpx.AsyncClient(timeout=10) as http:

        async def one(i: int) -> httpx.Response:
            async with gate:
                url = servers[i % 2]
                return await http.get(f"{url}/api/v1/auth/me", headers=bearer(key))

        answers = await asyncio.gather(*(one(i) for i in range(2 * limit)))
    allowed = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code != 200]
    served_by = {r.url.port for r in allowed}
    print(f"a burst of {2 * limit} over two processes allowed {len(allowed)}")
    assert abs(len(allowed) - limit) <= 0.05 * limit
    assert len(served_by) == 2  # both processes served part of it
    for response in refused:
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
        assert response.json()["rate_limit"]["scope"] == "api_key"
