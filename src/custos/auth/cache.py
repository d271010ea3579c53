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
from collections.abc import Awaitable, Callable, Iterable

import orjson
import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from custos.auth.principal import Principal
from custos.config import Settings
from custos.db import on_after_commit

log = structlog.get_logger(__name__)

_HEARTBEAT = b"\x00hb"
HEARTBEAT_SECONDS = 0.25
HEARD_WITHIN_SECONDS = 0.8
SHUTDOWN_SECONDS = 2.0
# Look-ups that matched nothing are kept apart and small: made-up keys must not be able to
# push genuine entries out of the cache.
UNKNOWN_MAX_ENTRIES = 10_000

# What a look-up decided (a principal, or None for refused) and the tags that undo it.
Verdict = tuple[Principal | None, frozenset[str]]


def channel_for(settings: Settings) -> bytes:
    """One channel per deployment (secret and database), so deployments or test runs that
    share a Redis server never hear each other's heartbeats or invalidations."""
    return b"custos:auth:" + settings.deployment_id.encode()


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
        self._by_tag: dict[str, set[str]] = {}
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[Principal | None]] = {}
        self._redis = redis
        self._channel = channel_for(settings)
        self._last_heard = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self.broadcast_failures = 0

    # -- lookups ----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True when invalidations from other processes are known to reach us."""
        if self._redis is None:
            return True  # one process: local invalidation is the whole story
        return time.monotonic() - self._last_heard < HEARD_WITHIN_SECONDS

    def _fresh(self, stored_at: float) -> bool:
        ttl = self._ttl if self.connected else self._degraded_ttl
        return time.monotonic() - stored_at < ttl

    def get(self, key: str) -> tuple[bool, Principal | None]:
        entry = self._entries.get(key)
        if entry is not None:
            if self._fresh(entry[0]):
                self._entries.move_to_end(key)
                return True, entry[1]
            self._drop(key)
            return False, None
        unknown_since = self._unknown.get(key)
        if unknown_since is not None:
            if self._fresh(unknown_since):
                return True, None
            del self._unknown[key]
        return False, None

    def put(self, key: str, principal: Principal | None, tags: frozenset[str]) -> None:
        if principal is None and not tags:
            self._unknown[key] = time.monotonic()
            self._unknown.move_to_end(key)
            while len(self._unknown) > UNKNOWN_MAX_ENTRIES:
                self._unknown.popitem(last=False)
            return
        self._drop(key)
        self._entries[key] = (time.monotonic(), principal, tags)
        for tag in tags:
            self._by_tag.setdefault(tag, set()).add(key)
        while len(self._entries) > self._max:
            self._drop(next(iter(self._entries)))

    async def get_or_load(
        self, key: str, load: Callable[[], Awaitable[Verdict]]
    ) -> Principal | None:
        """One look-up per key at a time: concurrent misses wait for the first one."""
        found, principal = self.get(key)
        if found:
            return principal
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Principal | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            principal, tags = await load()
            self.put(key, principal, tags)
            future.set_result(principal)
            return principal
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here so an unawaited failure is not logged twice
            raise
        finally:
            del self._inflight[key]

    def __len__(self) -> int:
        return len(self._entries) + len(self._unknown)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for tag in entry[2]:
            keys = self._by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_tag[tag]

    # -- invalidation -----------------------------------------------------------------------

    def invalidate_local(self, tags: Iterable[str]) -> None:
        wanted = set(tags)
        if "*" in wanted:
            self._entries.clear()
            self._by_tag.clear()
            self._unknown.clear()
            return
        for tag in wanted:
            for key in list(self._by_tag.get(tag, ())):
                self._drop(key)

    async def invalidate(self, tags: Iterable[str]) -> None:
        tag_list = sorted(set(tags))
        self.invalidate_local(tag_list)
        if self._redis is None:
            return
        try:
            await self._redis.publish(self._channel, orjson.dumps(tag_list))
        except Exception as exc:  # other processes fall back to the degraded TTL
            self.broadcast_failures += 1
            log.warning("auth_invalidation_broadcast_failed", error=type(exc).__name__)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping.clear()
        if self._redis is not None:
            self._tasks = [
                asyncio.create_task(self._listen(), name="auth-cache-listen"),
                asyncio.create_task(self._heartbeat(), name="auth-cache-heartbeat"),
            ]

    async def stop(self) -> None:
        # Asked, not cancelled: cancelling the listener mid-read can leave its pub/sub
        # connection unable to close (redis-py #3941). Both loops notice within a beat.
        self._stopping.set()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=SHUTDOWN_SECONDS)
            for task in late:  # never hang on the way out
                task.cancel()
        self._tasks = []

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when asked to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _heartbeat(self) -> None:
        assert self._redis is not None
        while not self._stopping.is_set():
            with contextlib.suppress(Exception):
                await self._redis.publish(self._channel, _HEARTBEAT)
            await self._pause(HEARTBEAT_SECONDS)

    async def _listen(self) -> None:
        assert self._redis is not None
        while not self._stopping.is_set():
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                # Whatever was published while we were away is lost: start clean.
                self.invalidate_local(["*"])
                while not self._stopping.is_set():
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
                await self._pause(0.5)
            finally:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(SHUTDOWN_SECONDS):
                        await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]


def invalidate_after_commit(cache: CredentialCache, session: AsyncSession, tags: set[str]) -> None:
    """Drop cached credentials everywhere once the change is committed (never before, or a
    process could re-cache the old state from a transaction that has not committed yet)."""

    async def broadcast() -> None:
        await cache.invalidate(tags)

    on_after_commit(session, broadcast)
