from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from fastapi import Request, Response

from custos.auth.dependencies import RuntimeDep
from custos.kit.routing import CustosRouter
from custos.kit.time import as_utc, utcnow
from custos.models import WebhookDelivery
from custos.observability import AUTH_CACHE_CONNECTED, render_metrics
from custos.runtime import Runtime
from custos.worker.app import queue_stats

router = CustosRouter(tags=["operations"])
_STARTED = time.time()


async def _check_database(runtime: Runtime) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with runtime.db.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))
        return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
    except Exception as exc:
        return {"status": "down", "error": type(exc).__name__}


async def _check_redis(runtime: Runtime) -> dict[str, Any]:
    if runtime.redis is None:
        return {"status": "not_configured"}
    started = time.perf_counter()
    try:
        await runtime.redis.ping()
        return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
    except Exception as exc:
        return {"status": "down", "error": type(exc).__name__}


@router.get("/health", summary="Liveness: the process is serving")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: the database and Redis are reachable")
async def ready(runtime: RuntimeDep, response: Response) -> dict[str, Any]:
    checks = {"database": await _check_database(runtime), "redis": await _check_redis(runtime)}
    ok = all(c["status"] in ("ok", "not_configured") for c in checks.values())
    response.status_code = 200 if ok else 503
    return {"status": "ready" if ok else "not_ready", "checks": checks}


async def _check_jobs(runtime: Runtime, request: Request) -> dict[str, Any]:
    try:
        stats = await queue_stats(runtime, request.app.state.job_app)
    except Exception as exc:
        return {"status": "down", "error": type(exc).__name__}
    oldest = stats.oldest_pending_at
    return {
        "status": "ok",
        "runs_in": "this process" if runtime.settings.runs_jobs_in_process else "custos worker",
        "pending": stats.pending,
        "running": stats.running,
        "failed": stats.failed,
        "oldest_pending_at": oldest.isoformat() if oldest else None,
        "oldest_pending_age_seconds": round((utcnow() - oldest).total_seconds(), 1)
        if oldest
        else None,
    }


def _traffic(runtime: Runtime) -> dict[str, Any]:
    settings = runtime.settings
    shared = runtime.traffic.limiter.shared
    return {
        # degraded: Redis is configured but not answering (failing open or closed).
        "status": "ok" if runtime.redis_health.up or runtime.redis is None else "degraded",
        "rate_limits": "off" if not settings.rate_limits_enabled else "on",
        "counting_in": "redis" if shared and runtime.redis is not None else "memory",
        "fail_open": settings.rate_limit_fail_open,
        "cache": runtime.read_cache.store.backend if settings.cache_enabled else "off",
        "usage_pending_rows": runtime.usage.pending if runtime.usage is not None else None,
    }


async def _check_deliveries(runtime: Runtime) -> dict[str, Any]:
    """Webhook messages due now and not yet sent: a backlog that grows means the workers
    do not keep up (or are not running)."""
    try:
        async with runtime.db.transaction(system=True, write=False) as session:
            due, oldest = (
                await session.execute(
                    sa.select(sa.func.count(), sa.func.min(WebhookDelivery.next_attempt_at)).where(
                        WebhookDelivery.status == "pending",
                        WebhookDelivery.next_attempt_at <= utcnow(),
                    )
                )
            ).one()
    except Exception as exc:
        return {"status": "down", "error": type(exc).__name__}
    oldest = as_utc(oldest) if oldest else None
    return {
        "status": "ok",
        "due": due,
        "oldest_due_at": oldest.isoformat() if oldest else None,
        "oldest_due_age_seconds": round((utcnow() - oldest).total_seconds(), 1) if oldest else None,
    }


@router.get("/health/detailed", summary="Each component's state and latency; the job queue")
async def health_detailed(
    runtime: RuntimeDep, request: Request, response: Response
) -> dict[str, Any]:
    database = await _check_database(runtime)
    redis = await _check_redis(runtime)
    connected = runtime.credentials.connected
    AUTH_CACHE_CONNECTED.set(1 if connected else 0)
    components = {
        "database": {**database, "backend": runtime.db.engine.dialect.name},
        "redis": redis,
        "auth_cache": {
            "status": "ok" if connected else "degraded",
            "entries": len(runtime.credentials),
            "broadcast_failures": runtime.credentials.broadcast_failures,
        },
        "jobs": await _check_jobs(runtime, request),
        "traffic": _traffic(runtime),
        "webhook_deliveries": await _check_deliveries(runtime),
    }
    ok = database["status"] == "ok" and redis["status"] in ("ok", "not_configured")
    response.status_code = 200 if ok else 503
    return {
        "status": "ok" if ok else "degraded",
        "uptime_seconds": round(time.time() - _STARTED, 1),
        "environment": runtime.settings.environment,
        "components": components,
    }


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(runtime: RuntimeDep) -> Response:
    AUTH_CACHE_CONNECTED.set(1 if runtime.credentials.connected else 0)
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)
