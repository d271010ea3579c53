"""Redis clients, and whether the one on the request path is answering."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from custos.config import Settings
from custos.observability import REDIS_ERRORS, REDIS_UP

log = structlog.get_logger(__name__)

PROBE_SECONDS = 0.5


def create_redis(settings: Settings) -> Redis | None:
    """None on the embedded default: callers fall back to in-process equivalents."""
    return _client(settings, timeout=1.0)


def create_traffic_redis(settings: Settings) -> Redis | None:
    """Rate limits and the read cache: their own pool, which fails fast. redis-py's default
    retries (ten, with backoff) would hold a request for seconds while Redis is down; here a
    call retries once (a connection dropped by a Redis restart) and then gives up, and
    RedisHealth keeps the next requests from trying until a probe succeeds."""
    return _client(settings, timeout=0.5, retry=Retry(NoBackoff(), 1))


def _client(settings: Settings, *, timeout: float, retry: Retry | None = None) -> Redis | None:
    if not settings.redis_url:
        return None
    options: dict[str, Any] = {"retry": retry} if retry is not None else {}
    return Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        health_check_interval=5,
        decode_responses=False,
        **options,
    )


class RedisHealth:
    """Whether the traffic Redis answers. The first failure marks it down (logged once and
    counted); callers then skip it without a round trip, and a probe pings it every
    PROBE_SECONDS. When a ping succeeds the recovery hooks run (a hook that fails keeps it
    down and is retried), then it is marked up again."""

    def __init__(self, redis: Redis | None) -> None:
        self.redis = redis
        self.up = redis is not None
        self.outages = 0
        self._recovery: list[Callable[[], Awaitable[None]]] = []
        self._probe: asyncio.Task[None] | None = None
        self._stopping = False
        if redis is not None:
            REDIS_UP.set(1)

    def on_recovery(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._recovery.append(hook)

    def failed(self, component: str, exc: BaseException) -> None:
        REDIS_ERRORS.labels(component).inc()
        if not self.up or self.redis is None:
            return
        self.up = False
        self.outages += 1
        REDIS_UP.set(0)
        log.warning("redis_unavailable", component=component, error=type(exc).__name__)
        if not self._stopping and (self._probe is None or self._probe.done()):
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to probe from
                self._probe = asyncio.get_running_loop().create_task(
                    self._until_back(), name="redis-probe"
                )

    async def _until_back(self) -> None:
        assert self.redis is not None
        while not self._stopping:
            await asyncio.sleep(PROBE_SECONDS)
            try:
                async with asyncio.timeout(1.0):
                    await self.redis.ping()
                for hook in self._recovery:
                    await hook()
            except Exception as exc:
                REDIS_ERRORS.labels("probe").inc()
                log.debug("redis_still_unavailable", error=type(exc).__name__)
                continue
            self.up = True
            REDIS_UP.set(1)
            log.info("redis_available_again")
            return

    async def stop(self) -> None:
        self._stopping = True
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._probe
        if self.redis is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await self.redis.aclose()
