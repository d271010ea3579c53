"""JSON logs (structlog) and Prometheus metrics. Neither ever carries personal data: logs hold
route templates, never paths with ids or query strings, and metric labels are templates too."""

from __future__ import annotations

import logging
import os
import sys

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from custos.config import Settings

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests handled", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request duration",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
AUTH_CACHE_CONNECTED = Gauge(
    "custos_auth_cache_broadcast_connected",
    "1 while credential invalidations from other processes reach this one",
    multiprocess_mode="min",
)

# Traffic control. Labels are fixed vocabularies (limit scopes, cache kinds), never tenants.
REDIS_UP = Gauge(
    "custos_redis_up",
    "1 while rate limits and the read cache reach Redis (0: failing open or closed)",
    multiprocess_mode="min",
)
REDIS_ERRORS = Counter(
    "custos_redis_errors_total", "Redis calls that failed, by component", ["component"]
)
RATE_LIMIT_REFUSALS = Counter(
    "custos_rate_limit_refusals_total", "Requests refused with 429, by limit", ["scope"]
)
CACHE_REQUESTS = Counter(
    "custos_cache_requests_total",
    "Read cache look-ups: hit, miss, or bypass (cache unavailable)",
    ["cache", "result"],
)
USAGE_ROWS_WRITTEN = Counter("custos_usage_rows_written_total", "Usage rows flushed")
USAGE_FLUSH_FAILURES = Counter(
    "custos_usage_flush_failures_total", "Usage flushes that failed (kept for the next one)"
)
USAGE_DROPPED = Counter(
    "custos_usage_requests_dropped_total",
    "Requests not metered because the unflushed buffer was full",
)


def configure_logging(settings: Settings) -> None:
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if settings.log_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )
    # Uvicorn's own access log prints raw paths and query strings: ours replaces it.
    logging.getLogger("uvicorn.access").disabled = True


def render_metrics() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several worker processes: aggregate what each wrote to the shared directory.
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
