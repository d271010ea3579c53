"""The long-lived parts of a running Custos process, built once and shared."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from redis.asyncio import Redis

from custos.api_key.last_used import LastUsedTracker
from custos.api_key.secrets import ApiKeySecrets
from custos.audit.sealing import AuditSealer
from custos.auth.cache import CredentialCache
from custos.auth.passwords import Passwords
from custos.auth.throttle import LoginThrottle, create_limits_storage
from custos.auth.tokens import Tokens
from custos.config import Settings
from custos.db import Database
from custos.redis import create_redis


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

    @classmethod
    def build(cls, settings: Settings, db: Database | None = None) -> Runtime:
        database = db or Database(settings)
        redis = create_redis(settings)
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
            login_throttle=LoginThrottle(settings, create_limits_storage(settings, redis)),
            audit_sealer=AuditSealer(database),
        )

    async def start(self) -> None:
        await self.credentials.start()
        await self.last_used.start()
        await self.audit_sealer.start()
        self.db.audit_sealer = self.audit_sealer

    async def stop(self) -> None:
        self.db.audit_sealer = None
        await self.audit_sealer.stop()
        await self.last_used.stop()
        await self.credentials.stop()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await self.redis.aclose()
        await self.db.dispose()
