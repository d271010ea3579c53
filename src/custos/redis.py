from __future__ import annotations

from redis.asyncio import Redis

from custos.config import Settings


def create_redis(settings: Settings) -> Redis | None:
    """None on the embedded default: callers fall back to in-process equivalents."""
    if not settings.redis_url:
        return None
    return Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=1.0,
        socket_timeout=1.0,
        health_check_interval=5,
        decode_responses=False,
    )
