"""The long-lived parts of a running Custos process, built once and shared."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from redis.asyncio import Redis

from custos.api_key.last_used import LastUsedTracker
from custos.api_key.secrets import ApiKeySecrets
from custos.audit.sealing import AuditSealer
from custos.auth.cache import CredentialCache
from custos.auth.passwords import Passwords
from custos.auth.throttle import LoginThrottle, create_limits_storage
from custos.auth.tokens import Tokens
from custos.cache.service import ReadCache
from custos.config import Settings
from custos.db import Database
from custos.event.publishing import EventPublisher
from custos.feedback import analysis
from custos.kit import cpupool
from custos.kit.gcpause import settle_after_start_up
from custos.rate_limit.gate import TrafficGate
from custos.rate_limit.limiter import LeasedLimiter
from custos.redis import RedisHealth, create_redis, create_traffic_redis
from custos.usage.meter import UsageMeter
from custos.webhook.sender import WebhookSender


@dataclass
class Runtime:
    settings: Settings
    db: Database
    redis: Redis | None
    credentials: CredentialCache
    tokens: Tokens
    passwords: Passwords
    key_secrets: ApiKeySecrets
    last_used: LastUsedTracker
    login_throttle: LoginThrottle
    audit_sealer: AuditSealer
    # Traffic control: rate limits and metering at the request's edges, the read cache. Both
    # limits and cache use their own fail-fast Redis pool, watched by redis_health.
    redis_health: RedisHealth
    usage: UsageMeter | None
    traffic: TrafficGate
    read_cache: ReadCache
    webhooks: WebhookSender
    # Set when events are published to object storage (events_bucket).
    publisher: EventPublisher | None

    @classmethod
    def build(cls, settings: Settings, db: Database | None = None) -> Runtime:
        database = db or Database(settings)
        redis = create_redis(settings)
        traffic_redis = create_traffic_redis(settings)
        health = RedisHealth(traffic_redis)
        limiter = LeasedLimiter(
            create_limits_storage(settings, traffic_redis) if traffic_redis else None,
            health,
            namespace=settings.deployment_id,
            fail_open=settings.rate_limit_fail_open,
        )
        usage = (
            UsageMeter(
                database,
                flush_seconds=settings.usage_flush_seconds,
                max_rows=settings.usage_buffer_max_rows,
            )
            if settings.usage_metering_enabled
            else None
        )
        read_cache = ReadCache(settings, traffic_redis, health)
        read_cache.attach(database)
        # Sign-in throttling and webhook rate limits count on the fail-fast pool too: a Redis
        # outage must not hold requests or deliveries for seconds.
        limits_storage = create_limits_storage(settings, traffic_redis)
        return cls(
            settings=settings,
            db=database,
            redis=redis,
            credentials=CredentialCache(settings, redis),
            tokens=Tokens(settings),
            passwords=Passwords(settings),
            key_secrets=ApiKeySecrets(
                settings.secret_key.get_secret_value(), settings.api_key_prefix
            ),
            last_used=LastUsedTracker(database, settings.api_key_last_used_flush_seconds),
            login_throttle=LoginThrottle(settings, limits_storage),
            audit_sealer=AuditSealer(database),
            redis_health=health,
            usage=usage,
            traffic=TrafficGate(settings, limiter, usage),
            read_cache=read_cache,
            webhooks=WebhookSender(settings, limits_storage),
            publisher=EventPublisher(settings) if settings.publishes_events else None,
        )

    async def start(self) -> None:
        await self.credentials.start()
        await self.last_used.start()
        await self.audit_sealer.start()
        self.db.audit_sealer = self.audit_sealer
        if self.usage is not None:
            await self.usage.start()
        await self.read_cache.start()

    async def stop(self) -> None:
        self.db.audit_sealer = None
        await self.audit_sealer.stop()
        await self.last_used.stop()
        # Graceful shutdown: what this process metered is written before it goes.
        if self.usage is not None:
            await self.usage.stop()
        await self.read_cache.stop()
        await self.redis_health.stop()
        await self.credentials.stop()
        await self.webhooks.aclose()
        if self.publisher is not None:
            self.publisher.close()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await self.redis.aclose()
        await self.db.dispose()


@contextmanager
def settled_process(settings: Settings) -> Iterator[None]:
    """Around the life of a process that runs until stopped (`custos serve`, `custos
    worker`): settled once it is up, released however it ends."""
    settle_process(settings)
    try:
        yield
    finally:
        release_process()


def settle_process(settings: Settings) -> None:
    """Once a process that runs until stopped (`custos serve`, `custos worker`) is up: the
    helpers for feedback's text analysis started (not by the first call that needs them),
    then everything built so far frozen for the collector (kit/gcpause.py)."""
    cpupool.warm_up(settings.cpu_workers, analysis.prime)
    settle_after_start_up()


def release_process() -> None:
    """When such a process stops: the helpers stopped and their queues released. Left to
    the interpreter's exit, their semaphores outlived the process's last collection, and
    multiprocessing warned of leaked semaphores at every server stop."""
    cpupool.shutdown()
