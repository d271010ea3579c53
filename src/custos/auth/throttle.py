"""Brute-force resistance for the login and token endpoints: per IP and per account."""

from __future__ import annotations

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis

from custos.config import Settings
from custos.kit.crypto import derive_key, keyed_hash
from custos.rate_limit.gate import note_limit, refusal
from custos.rate_limit.limiter import Decision

log = structlog.get_logger(__name__)


def create_limits_storage(settings: Settings, redis: Redis | None) -> Storage:
    if settings.redis_url and redis is not None:
        # Shares our connection pool, so it is closed with the rest at shutdown.
        return RedisStorage(
            "async+" + settings.redis_url,
            implementation="redispy",
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]
        )
    return MemoryStorage()


class LoginThrottle:
    def __init__(self, settings: Settings, storage: Storage) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._per_ip: RateLimitItem = parse(settings.login_rate_per_ip)
        self._per_account: RateLimitItem = parse(settings.login_failures_per_account)
        # Account identifiers are hashed so no email address is written to Redis.
        self._key = derive_key(settings.secret_key.get_secret_value(), "login-throttle")

    def account(self, identifier: str) -> str:
        return keyed_hash(self._key, identifier.lower())[:32]

    async def hit_ip(self, ip: str) -> None:
        await self._guard(self._per_ip, "login-ip", ip, consume=True)

    async def check_account(self, account: str) -> None:
        await self._guard(self._per_account, "login-account", account, consume=False)

    async def record_failure(self, account: str) -> None:
        try:
            await self._limiter.hit(self._per_account, "login-account", account)
        except Exception as exc:
            log.warning("login_throttle_unavailable", error=type(exc).__name__)

    async def _guard(self, item: RateLimitItem, scope: str, ident: str, *, consume: bool) -> None:
        try:
            if consume:
                allowed = await self._limiter.hit(item, scope, ident)
            else:
                allowed = await self._limiter.test(item, scope, ident)
            if allowed and not consume:
                return
            stats = await self._limiter.get_window_stats(item, scope, ident)
        except Exception as exc:
            # Fail open: an unavailable rate-limit store must not lock everybody out.
            log.warning("login_throttle_unavailable", error=type(exc).__name__)
            return
        label = "sign_in" if consume else "account"
        decision = Decision(allowed, label, item, int(stats.remaining), stats.reset_time)
        # The stricter sign-in limit is what the response's X-RateLimit-* headers show.
        note_limit(decision)
        if not allowed:
            raise refusal(decision)
