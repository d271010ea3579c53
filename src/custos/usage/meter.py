"""Usage metering without a database write on the request path.

Each request adds one to a counter in memory, keyed by tenant, caller, route template,
method, status, latency bucket and minute; a flush writes the counters as rows in one
INSERT (`usage_records`), every `usage_flush_seconds`, and at shutdown. Each process
flushes its own counters; queries sum the rows. A flush that fails keeps its counters for
the next one; while the buffer is full (`usage_buffer_max_rows` distinct counters, e.g.
with the database down for long), new combinations are dropped and counted in
`custos_usage_requests_dropped_total`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import sqlalchemy as sa
import structlog
from sqlalchemy.exc import IntegrityError

from custos.db import Database
from custos.kit.periodic import Periodic
from custos.models import UsageRecord
from custos.observability import USAGE_DROPPED, USAGE_FLUSH_FAILURES, USAGE_ROWS_WRITTEN
from custos.usage.latency import bucket_of

log = structlog.get_logger(__name__)

_TABLE = cast(sa.Table, UsageRecord.__table__)
_ROUTE_MAX = 200

# tenant, minute, principal type, principal id, route, method, status, latency bucket
Key = tuple[str, int, str, str, str, str, int, int]


class UsageMeter:
    def __init__(self, db: Database, *, flush_seconds: float, max_rows: int) -> None:
        self._db = db
        self._max_rows = max_rows
        # requests, summed milliseconds, request bytes, response bytes
        self._counts: dict[Key, list[Any]] = {}
        self._lock = asyncio.Lock()
        self._loop = Periodic("usage-meter", flush_seconds, self.flush)

    def record(
        self,
        tenant_id: str,
        principal_type: str,
        principal_id: str,
        route: str,
        method: str,
        status: int,
        seconds: float,
        request_bytes: int,
        response_bytes: int,
    ) -> None:
        milliseconds = seconds * 1000
        key = (
            tenant_id,
            int(time.time() // 60),
            principal_type,
            principal_id,
            route[:_ROUTE_MAX],
            method,
            status,
            bucket_of(milliseconds),
        )
        counts = self._counts.get(key)
        if counts is None:
            if len(self._counts) >= self._max_rows:
                USAGE_DROPPED.inc()
                return
            self._counts[key] = [1, milliseconds, request_bytes, response_bytes]
            return
        counts[0] += 1
        counts[1] += milliseconds
        counts[2] += request_bytes
        counts[3] += response_bytes

    @property
    def pending(self) -> int:
        return len(self._counts)

    async def flush(self) -> int:
        """Write what was counted so far; returns the rows written."""
        async with self._lock:
            if not self._counts:
                return 0
            counts, self._counts = self._counts, {}
            rows = [_row(key, values) for key, values in counts.items()]
            try:
                # System transaction: one flush carries many tenants' rows.
                async with self._db.transaction(system=True) as session:
                    await session.execute(sa.insert(_TABLE), rows)
            except IntegrityError:
                # Only a tenant removed meanwhile does this; retrying cannot succeed.
                USAGE_FLUSH_FAILURES.inc()
                USAGE_DROPPED.inc(sum(values[0] for values in counts.values()))
                log.error("usage_flush_refused", rows=len(rows))
                return 0
            except Exception as exc:
                USAGE_FLUSH_FAILURES.inc()
                log.warning("usage_flush_failed", rows=len(rows), error=type(exc).__name__)
                self._merge_back(counts)
                return 0
            USAGE_ROWS_WRITTEN.inc(len(rows))
            return len(rows)

    def _merge_back(self, counts: dict[Key, list[Any]]) -> None:
        for key, values in counts.items():
            current = self._counts.get(key)
            if current is not None:
                for i, value in enumerate(values):
                    current[i] += value
            elif len(self._counts) < self._max_rows:
                self._counts[key] = values
            else:
                USAGE_DROPPED.inc(values[0])

    async def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        # Nothing counted is lost on a graceful shutdown: a failed last flush is retried.
        for attempt in range(3):
            await self.flush()
            if not self._counts:
                return
            await asyncio.sleep(0.5 * (attempt + 1))
        log.error("usage_lost_at_shutdown", rows=len(self._counts))


def _row(key: Key, values: list[Any]) -> dict[str, Any]:
    tenant_id, minute, principal_type, principal_id, route, method, status, bucket = key
    return {
        "tenant_id": tenant_id,
        "minute": minute,
        "principal_type": principal_type,
        "principal_id": principal_id,
        "route": route,
        "method": method,
        "status": status,
        "latency_bucket": bucket,
        "requests": values[0],
        "duration_ms": values[1],
        "request_bytes": values[2],
        "response_bytes": values[3],
    }
