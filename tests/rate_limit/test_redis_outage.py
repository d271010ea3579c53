"""Redis killed or flushed mid-run: no 500s, the service keeps serving (fail-open, counting in
memory meanwhile) or refuses with 503 (fail-closed), and limits count in Redis again within
5 s of it returning. Each test runs a redis-server of its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from custos.config import Settings
from custos.runtime import Runtime
from tests.conftest import make_settings, runtime_with
from tests.factories import Factory, bearer, client_for
from tests.processes import RedisServer, private_redis

RESUME_BOUND_SECONDS = 5.0


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with private_redis() as server:
        yield server


@pytest.fixture
async def runtime_on(settings: Settings, redis_server: RedisServer) -> AsyncIterator[Runtime]:
    async with runtime_with(settings.database_url, redis_url=redis_server.url) as runtime:
        yield runtime


async def statuses(client: httpx.AsyncClient, key: str, count: int) -> list[int]:
    return [
        (await client.get("/api/v1/auth/me", headers=bearer(key))).status_code for _ in range(count)
    ]


def counters_in(server: RedisServer) -> int:
    """Rate-limit counters the given Redis holds."""
    return server.command("KEYS", "LIMITS*").count(b"LIMITS")


class TestKilled:
    async def test_no_500s_and_limits_resume_within_5s_of_redis_returning(
        self, runtime_on: Runtime, redis_server: RedisServer, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        key = await factory.key(tenant.id, ["customers:read"], rate_limits={"per_minute": 20})
        during = await factory.key(tenant.id, ["customers:read"], rate_limits={"per_minute": 20})
        async with client_for(runtime_on) as client:
            up = await statuses(client, key, 25)
            made = await client.post(
                "/api/v1/customers", json={"full_name": "Kept"}, headers=bearer(tenant.admin_key)
            )
            redis_server.kill()
            started = time.monotonic()
            down = await statuses(client, during, 25)
            slowest = time.monotonic() - started
            read_while_down = await client.get(
                f"/api/v1/customers/{made.json()['id']}", headers=bearer(tenant.admin_key)
            )
            metrics_down = (await client.get("/metrics")).text

            redis_server.start()  # empty, on the same port
            returned = time.monotonic()
            fresh = await factory.key(tenant.id, ["customers:read"], rate_limits={"per_minute": 10})
            while counters_in(redis_server) == 0:
                meanwhile = await client.get("/api/v1/auth/me", headers=bearer(fresh))
                assert meanwhile.status_code < 500
                assert time.monotonic() - returned < RESUME_BOUND_SECONDS + 5, "never resumed"
                await asyncio.sleep(0.1)
            resumed_after = time.monotonic() - returned
            after = await statuses(client, fresh, 12)
            counting_in_redis = runtime_on.traffic.limiter.shared
            metrics_up = (await client.get("/metrics")).text

        print(f"limits counted in Redis again {resumed_after:.2f} s after it returned")
        assert up == [200] * 20 + [429] * 5
        # Fail-open: served throughout, this process counting on its own meanwhile.
        assert down == [200] * 20 + [429] * 5
        assert slowest < 2.0, "requests must not wait on a Redis that is down"
        assert read_while_down.status_code == 200
        assert "custos_redis_up 0.0" in metrics_down
        assert 'custos_redis_errors_total{component="rate_limit"}' in metrics_down
        assert resumed_after < RESUME_BOUND_SECONDS
        assert counting_in_redis
        # Counted in Redis again, across whatever the fresh key had spent while resuming.
        assert after.count(429) >= 2
        assert set(after) <= {200, 429}
        assert "custos_redis_up 1.0" in metrics_up

    async def test_flushall_mid_run_resets_counts_and_the_limit_applies_anew(
        self, runtime_on: Runtime, redis_server: RedisServer, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        key = await factory.key(tenant.id, ["customers:read"], rate_limits={"per_minute": 10})
        async with client_for(runtime_on) as client:
            before = await statuses(client, key, 12)
            assert redis_server.command("FLUSHALL").startswith(b"+OK")
            flushed = time.monotonic()
            # A refusal is trusted locally for at most a second, then asked again.
            while (await client.get("/api/v1/auth/me", headers=bearer(key))).status_code == 429:
                assert time.monotonic() - flushed < RESUME_BOUND_SECONDS, "never resumed"
                await asyncio.sleep(0.1)
            resumed_after = time.monotonic() - flushed
            after = await statuses(client, key, 12)
        print(f"counting afresh {resumed_after:.2f} s after FLUSHALL")
        assert before == [200] * 10 + [429] * 2
        assert resumed_after < RESUME_BOUND_SECONDS
        # One request of the new window was spent by the loop above.
        assert after == [200] * 9 + [429] * 3


class TestFailClosed:
    async def test_requests_are_refused_with_503_but_probes_answer(
        self, settings: Settings, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        async with (
            runtime_with(
                settings.database_url,
                redis_url="redis://127.0.0.1:1/0",  # nothing listens there
                rate_limit_fail_open=False,
            ) as runtime,
            client_for(runtime) as client,
        ):
            answers = [
                await client.get("/api/v1/auth/me", headers=bearer(tenant.admin_key)),
                await client.get("/api/v1/docs/scopes"),
                await client.get("/api/v1/auth/me", headers=bearer(tenant.admin_key)),
            ]
            health = await client.get("/health")
        assert [r.status_code for r in answers] == [503, 503, 503]
        for response in answers:
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["retry-after"] == "1"
        assert health.status_code == 200

    async def test_fail_open_without_redis_serves_and_still_limits_per_process(
        self, settings: Settings, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        key = await factory.key(tenant.id, ["customers:read"], rate_limits={"per_minute": 4})
        dead = "redis://127.0.0.1:1/0"
        async with (
            runtime_with(settings.database_url, redis_url=dead) as runtime,
            client_for(runtime) as client,
        ):
            answers = await statuses(client, key, 6)
        assert answers == [200] * 4 + [429] * 2


class TestLeases:
    async def test_a_lease_cut_short_never_leaves_the_others_waiting(
        self, redis_server: RedisServer
    ) -> None:
        """Concurrent requests share the lease being taken; if the one taking it is
        cancelled (its client went away) while Redis is slow, the rest carry on."""
        from limits import parse

        from custos.auth.throttle import create_limits_storage
        from custos.rate_limit.limiter import LeasedLimiter
        from custos.redis import RedisHealth, create_traffic_redis

        settings = make_settings("sqlite+aiosqlite:///unused.db", redis_url=redis_server.url)
        redis = create_traffic_redis(settings)
        health = RedisHealth(redis)
        limiter = LeasedLimiter(
            create_limits_storage(settings, redis), health, namespace="lease-test", fail_open=True
        )
        counter = limiter.counter("api_key", parse("100/minute"), "key_lease")
        try:
            redis_server.pause()
            taking = asyncio.create_task(limiter.take(counter))
            waiting = asyncio.create_task(limiter.take(counter))
            await asyncio.sleep(0.1)
            taking.cancel()
            redis_server.resume()
            allowed, _ = await asyncio.wait_for(waiting, timeout=5)
            again, _ = await asyncio.wait_for(limiter.take(counter), timeout=5)
        finally:
            redis_server.resume()
            await health.stop()
        assert taking.cancelled()
        assert allowed
        assert again
