"""The read cache when Redis fails: reads go to the database (no 500s), and a write whose
invalidation Redis did not take is made good before the cache is used again, even when
Redis comes back with its old entries."""

from __future__ import annotations

import asyncio
import time

from custos.config import Settings
from tests.conftest import runtime_with
from tests.factories import Factory, bearer, client_for
from tests.processes import private_redis

BASE = "/api/v1/customers"


async def test_an_invalidation_missed_during_a_partition_is_made_good(
    settings: Settings, factory: Factory
) -> None:
    tenant = await factory.tenant()
    headers = bearer(tenant.admin_key)
    with private_redis() as redis:
        async with (
            runtime_with(settings.database_url, redis_url=redis.url) as runtime,
            client_for(runtime) as client,
        ):
            made = await client.post(BASE, json={"full_name": "Before"}, headers=headers)
            path = f"{BASE}/{made.json()['id']}"
            for _ in range(2):  # cached, then served from the cache
                assert (await client.get(path, headers=headers)).json()["full_name"] == "Before"

            redis.pause()  # alive, entries kept, but not answering
            changed = await client.patch(path, json={"full_name": "After"}, headers=headers)
            during = await client.get(path, headers=headers)
            listed = await client.get(BASE, headers=headers)
            stats_during = await client.get("/api/v1/cache/stats", headers=headers)
            redis.resume()

            back = time.monotonic()
            while not runtime.redis_health.up:
                assert time.monotonic() - back < 5, "the cache never came back"
                await asyncio.sleep(0.05)
            after = [await client.get(path, headers=headers) for _ in range(2)]
            metrics = (await client.get("/metrics")).text

    assert changed.status_code == 200
    assert during.status_code == 200
    assert during.json()["full_name"] == "After"
    assert listed.status_code == 200
    assert stats_during.status_code == 503  # the figures live in Redis
    # The entry Redis kept from before the write is dead: read afresh, then cached again.
    assert [r.json()["full_name"] for r in after] == ["After", "After"]
    assert 'custos_cache_requests_total{cache="customer",result="bypass"}' in metrics
