"""Usage reports (per hour or day, optionally grouped) and the roll-up of old minute rows."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from custos.config import Settings
from custos.db import Database
from custos.exceptions import InvalidInput
from custos.kit.time import as_utc, utcnow
from custos.usage import repository
from custos.usage.latency import percentile
from custos.usage.repository import Cell, UsageFilter
from custos.usage.schemas import Granularity, UsageFigures, UsagePoint, UsageReport

log = structlog.get_logger(__name__)

SECONDS = {Granularity.hour: 3600, Granularity.day: 86_400}
DEFAULT_SPAN = {Granularity.hour: timedelta(hours=24), Granularity.day: timedelta(days=30)}
MAX_BUCKETS = {Granularity.hour: 24 * 31, Granularity.day: 400}


@dataclass(frozen=True, slots=True)
class UsageQuery:
    since: datetime | None = None
    until: datetime | None = None
    granularity: Granularity = Granularity.day
    group_by: str | None = None
    where: UsageFilter = field(default_factory=UsageFilter)


@dataclass
class _Totals:
    requests: int = 0
    duration_ms: float = 0.0
    request_bytes: int = 0
    response_bytes: int = 0
    classes: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    latency: dict[int, list[Any]] = field(default_factory=dict)

    def add(self, cell: Cell) -> None:
        self.requests += cell.requests
        self.duration_ms += cell.duration_ms
        self.request_bytes += cell.request_bytes
        self.response_bytes += cell.response_bytes
        self.classes[cell.status_class] += cell.requests
        bucket = self.latency.setdefault(cell.latency_bucket, [0, 0.0])
        bucket[0] += cell.requests
        bucket[1] += cell.duration_ms

    def figures(self) -> dict[str, Any]:
        errors = self.classes.get(4, 0) + self.classes.get(5, 0)
        histogram = [(b, n, ms) for b, (n, ms) in self.latency.items()]
        return {
            "requests": self.requests,
            "status_classes": {
                f"{cls}xx": n for cls, n in sorted(self.classes.items()) if n and 1 <= cls <= 5
            },
            "errors": errors,
            "error_rate": round(errors / self.requests, 6) if self.requests else 0.0,
            "server_errors": self.classes.get(5, 0),
            "latency_avg_ms": round(self.duration_ms / self.requests, 3) if self.requests else None,
            "latency_p50_ms": percentile(histogram, 0.50),
            "latency_p95_ms": percentile(histogram, 0.95),
            "request_bytes": self.request_bytes,
            "response_bytes": self.response_bytes,
        }


def _buckets(query: UsageQuery, settings: Settings) -> tuple[int, int]:
    seconds = SECONDS[query.granularity]
    until = as_utc(query.until) if query.until else utcnow()
    since = as_utc(query.since) if query.since else until - DEFAULT_SPAN[query.granularity]
    first = math.floor(since.timestamp() / seconds)
    end = math.ceil(until.timestamp() / seconds)
    if end <= first:
        raise InvalidInput(
            "`until` must be after `since`",
            errors=[{"loc": ["query", "until"], "msg": "must be after since"}],
        )
    most = MAX_BUCKETS[query.granularity]
    if end - first > most:
        raise InvalidInput(
            f"At most {most} {query.granularity.value}s at once",
            errors=[{"loc": ["query", "since"], "msg": f"the range spans over {most} buckets"}],
        )
    if query.granularity == Granularity.hour:
        kept_from = (_today() - settings.usage_raw_retention_days) * 86_400
        if first * seconds < kept_from:
            raise InvalidInput(
                f"Hourly figures are kept for {settings.usage_raw_retention_days} days;"
                " ask for granularity=day for older ones",
                errors=[{"loc": ["query", "since"], "msg": "older than the hourly figures"}],
            )
    return first, end


def _today() -> int:
    return int(utcnow().timestamp() // 86_400)


def _start(bucket: int, granularity: Granularity) -> datetime:
    return datetime.fromtimestamp(bucket * SECONDS[granularity], UTC)


def _group_name(group: Any, group_by: str | None) -> str | None:
    if group_by is None or group is None:
        return None
    if group_by == "status_class":
        return f"{int(group)}xx"
    return str(group)


async def report(session: AsyncSession, settings: Settings, query: UsageQuery) -> UsageReport:
    first, end = _buckets(query, settings)
    cells = await repository.cells(
        session,
        granularity=query.granularity.value,
        first=first,
        end=end,
        group_by=query.group_by,
        where=query.where,
    )
    totals = _Totals()
    points: dict[tuple[int, str | None], _Totals] = {}
    if query.group_by is None:
        # Every bucket, zeros included, so a chart needs no gap filling.
        points = {(bucket, None): _Totals() for bucket in range(first, end)}
    for cell in cells:
        totals.add(cell)
        key = (cell.bucket, _group_name(cell.group, query.group_by))
        points.setdefault(key, _Totals()).add(cell)
    series = [
        UsagePoint(start=_start(bucket, query.granularity), group=group, **acc.figures())
        for (bucket, group), acc in sorted(points.items(), key=_order)
    ]
    return UsageReport(
        since=_start(first, query.granularity),
        until=_start(end, query.granularity),
        granularity=query.granularity,
        group_by=query.group_by,
        totals=UsageFigures(**totals.figures()),
        series=series,
    )


def _order(item: tuple[tuple[int, str | None], _Totals]) -> tuple[int, str]:
    (bucket, group), _ = item
    return bucket, group or ""


async def roll_up(db: Database, settings: Settings) -> dict[str, int]:
    """Minute rows older than `usage_raw_retention_days` become day rows; day rows older than
    `usage_daily_retention_days` are deleted. Whole days only, so a day is in one table."""
    today = _today()
    async with db.transaction(system=True) as session:
        rolled = await repository.roll_up(
            session, today - settings.usage_raw_retention_days, postgres=db.is_postgres
        )
        purged = await repository.purge_daily(session, today - settings.usage_daily_retention_days)
    log.info("usage_rolled_up", day_rows=rolled, purged_day_rows=purged)
    return {"day_rows": rolled, "purged_day_rows": purged}
