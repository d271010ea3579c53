from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import pytest

from custos.auth.cache import UNKNOWN_MAX_ENTRIES, CredentialCache
from custos.auth.principal import Principal, PrincipalKind
from custos.config import Settings
from custos.redis import create_redis
from tests.conftest import make_settings

PRINCIPAL = Principal(
    kind=PrincipalKind.api_key, id="key_1", tenant_id="ten_1", scopes=frozenset({"users:read"})
)
TAGS = frozenset({"key:key_1", "tenant:ten_1"})


async def _until(condition: object, timeout: float) -> float:
    started = time.monotonic()
    while not condition():  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


class TestLocalCache:
    def test_hit_miss_and_tag_invalidation(self, settings: Settings) -> None:
        cache = CredentialCache(make_settings(settings.database_url, redis_url=None), None)
        assert cache.get("k") == (False, None)
        cache.put("k", PRINCIPAL, TAGS)
        cache.put("refused", None, frozenset({"tenant:ten_1"}))
        cache.put("other", PRINCIPAL, frozenset({"tenant:ten_2"}))
        assert cache.get("k") == (True, PRINCIPAL)
        assert cache.get("refused") == (True, None)
        cache.invalidate_local({"tenant:ten_1"})
        assert cache.get("k") == (False, None)
        assert cache.get("refused") == (False, None)
        assert cache.get("other") == (True, PRINCIPAL)

    def test_it_stays_within_its_size(self, settings: Settings) -> None:
        small = make_settings(settings.database_url, redis_url=None, auth_cache_max_entries=100)
        cache = CredentialCache(small, None)
        for n in range(250):
            cache.put(f"k{n}", PRINCIPAL, frozenset({f"key:{n}"}))
        assert len(cache) == 100
        assert cache.get("k249") == (True, PRINCIPAL)
        assert cache.get("k0") == (False, None)
        cache.invalidate_local({"key:249"})  # the tag index follows evictions and drops
        assert cache.get("k249") == (False, None)

    def test_made_up_keys_cannot_evict_genuine_entries(self, settings: Settings) -> None:
        small = make_settings(settings.database_url, redis_url=None, auth_cache_max_entries=100)
        cache = CredentialCache(small, None)
        cache.put("genuine", PRINCIPAL, TAGS)
        for n in range(UNKNOWN_MAX_ENTRIES + 500):
            cache.put(f"made-up-{n}", None, frozenset())  # looked up, matched nothing
        assert cache.get("genuine") == (True, PRINCIPAL)
        assert cache.get(f"made-up-{UNKNOWN_MAX_ENTRIES + 499}") == (True, None)
        assert cache.get("made-up-0") == (False, None)

    async def test_concurrent_misses_share_one_look_up(self, settings: Settings) -> None:
        cache = CredentialCache(make_settings(settings.database_url, redis_url=None), None)
        calls = 0

        async def load() -> tuple[Principal | None, frozenset[str]]:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.05)
            return PRINCIPAL, TAGS

        results = await asyncio.gather(*(cache.get_or_load("k", load) for _ in range(20)))
        assert results == [PRINCIPAL] * 20
        assert calls == 1

    async def test_a_failed_look_up_fails_its_waiters_and_is_not_cached(
        self, settings: Settings
    ) -> None:
        cache = CredentialCache(make_settings(settings.database_url, redis_url=None), None)

        async def broken() -> tuple[Principal | None, frozenset[str]]:
            await asyncio.sleep(0.01)
            raise ConnectionError("database down")

        results = await asyncio.gather(
            *(cache.get_or_load("k", broken) for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, ConnectionError) for r in results)
        assert cache.get("k") == (False, None)

    def test_entries_expire(self, settings: Settings) -> None:
        short = make_settings(settings.database_url, redis_url=None, auth_cache_ttl_seconds=0.05)
        cache = CredentialCache(short, None)
        cache.put("k", PRINCIPAL, TAGS)
        time.sleep(0.06)
        assert cache.get("k") == (False, None)


class TestWithoutABroadcast:
    async def test_unreachable_redis_shortens_trust_to_the_degraded_ttl(
        self, settings: Settings
    ) -> None:
        broken = make_settings(
            settings.database_url,
            redis_url="redis://127.0.0.1:1/0",
            auth_cache_degraded_ttl_seconds=0.2,
        )
        redis = create_redis(broken)
        cache = CredentialCache(broken, redis)
        await cache.start()
        try:
            cache.put("k", PRINCIPAL, TAGS)
            assert cache.connected is False
            assert cache.get("k") == (True, PRINCIPAL)
            await asyncio.sleep(0.25)
            assert cache.get("k") == (False, None)
            await cache.invalidate({"key:key_1"})  # must not raise
            assert cache.broadcast_failures == 1
        finally:
            await cache.stop()
            assert redis is not None
            await redis.aclose()


@pytest.fixture
async def two_caches(settings: Settings) -> AsyncIterator[tuple[CredentialCache, CredentialCache]]:
    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs REDIS_URL: the broadcast runs over Redis")
    caches, clients = [], []
    for _ in range(2):
        redis = create_redis(settings)
        assert redis is not None
        cache = CredentialCache(settings, redis)
        await cache.start()
        caches.append(cache)
        clients.append(redis)
    await _until(lambda: all(c.connected for c in caches), 3)
    yield caches[0], caches[1]
    for cache, client in zip(caches, clients, strict=True):
        await cache.stop()
        await client.aclose()


class TestBroadcast:
    async def test_an_invalidation_reaches_the_other_process_well_within_a_second(
        self, two_caches: tuple[CredentialCache, CredentialCache]
    ) -> None:
        first, second = two_caches
        second.put("k", PRINCIPAL, TAGS)
        await first.invalidate({"key:key_1"})
        elapsed = await _until(lambda: second.get("k") == (False, None), 1.0)
        assert elapsed < 1.0

    async def test_connected_while_heartbeats_arrive(
        self, two_caches: tuple[CredentialCache, CredentialCache]
    ) -> None:
        first, second = two_caches
        await asyncio.sleep(1.0)
        assert first.connected
        assert second.connected
