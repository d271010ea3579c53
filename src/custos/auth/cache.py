"""Per-process cache of verified credentials, with invalidation broadcast between processes.

Verification must not touch the database on every request, yet a revoked key, a suspended
tenant or a demoted user must lose access everywhere within a second. Each process keeps an
LRU of credential -> Principal. A change publishes its tags (`key:…`, `user:…`, `tenant:…`)
on Redis after commit, and every process drops the matching entries. Each process also
publishes a heartbeat; while it has not heard one recently (Redis down, partition) it trusts
entries for only `auth_cache_degraded_ttl_seconds`, so the bound holds even then.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Iterable

import orjson
import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from custos.auth.principal import Principal
from custos.config import Settings
from custos.db import on_after_commit

log = structlog.get_logger(__name__)

CHANNEL = b"custos:auth:invalidate"
_HEARTBEAT = b"\x00hb"
HEARTBEAT_SECONDS = 0.25
HEARD_WITHIN_SECONDS = 0.8


class CredentialCache:
    def __init__(self, settings: Settings, redis: Redis | None) -> None:
        self._ttl = settings.auth_cache_ttl_seconds
        self._degraded_ttl = settings.auth_cache_degraded_ttl_seconds
        self._max = settings.auth_cache_max_entries
        # key -> (stored at, principal or None for "refused", tags that invalidate it).
        # Refusals carry tags too: reactivating a tenant must clear its cached refusals.
        self._entries: OrderedDict[str, tuple[float, Principal | None, frozenset[str]]] = (
            OrderedDict()
        )
        self._redis = redis
        self._last_heard = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self.broadcast_failures = 0

    # -- lookups ----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True when invalidations from other processes are known to reach us."""
        if self._redis is None:
            return True  # one process: local invalidation is the whole story
        return time.monotonic() - self._last_heard < HEARD_WITHIN_SECONDS

    def get(self, key: str) -> tuple[bool, Principal | None]:
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        stored_at, principal, _tags = entry
        ttl = self._ttl if self.connected else self._degraded_ttl
        if time.monotonic() - stored_at >= ttl:
            self._entries.pop(key, None)
            return False, None
        self._entries.move_to_end(key)
        return True, principal

    def put(self, key: str, principal: Principal | None, tags: frozenset[str]) -> None:
        self._entries[key] = (time.monotonic(), principal, tags)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    # -- invalidation -----------------------------------------------------------------------

    def invalidate_local(self, tags: Iterable[str]) -> None:
        wanted = set(tags)
        if "*" in wanted:
            self._entries.clear()
            return
        for key in [k for k, (_, _, tags) in self._entries.items() if tags & wanted]:
            self._entries.pop(key, None)

    async def invalidate(self, tags: Iterable[str]) -> None:
        tag_list = sorted(set(tags))
        self.invalidate_local(tag_list)
        if self._redis is None:
            return
        try:
            await self._redis.publish(CHANNEL, orjson.dumps(tag_list))
        except Exception as exc:  # other processes fall back to the degraded TTL
            self.broadcast_failures += 1
            log.warning("auth_invalidation_broadcast_failed", error=type(exc).__name__)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        if self._redis is not None:
            self._tasks = [
                asyncio.create_task(self._listen(), name="auth-cache-listen"),
                asyncio.create_task(self._heartbeat(), name="auth-cache-heartbeat"),
            ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    async def _heartbeat(self) -> None:
        assert self._redis is not None
        while True:
            with contextlib.suppress(Exception):
                await self._redis.publish(CHANNEL, _HEARTBEAT)
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def _listen(self) -> None:
        assert self._redis is not None
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                # Whatever was published while we were away is lost: start clean.
                self._entries.clear()
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=HEARTBEAT_SECONDS
                    )
                    if message is None:
                        continue
                    self._last_heard = time.monotonic()
                    data = message.get("data")
                    if isinstance(data, bytes) and data != _HEARTBEAT:
                        self.invalidate_local(orjson.loads(data))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("auth_invalidation_listener_down", error=type(exc).__name__)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]


def invalidate_after_commit(cache: CredentialCache, session: AsyncSession, tags: set[str]) -> None:
    """Drop cached credentials everywhere once the change is committed (never before, or a
    process could re-cache the old state from a transaction that has not committed yet)."""

    async def broadcast() -> None:
        await cache.invalidate(tags)

    on_after_commit(session, broadcast)
