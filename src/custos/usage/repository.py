"""Usage queries: minute rows and rolled-up day rows, summed by bucket, group, status class
and latency bucket in the database; the figures are folded from that in usage/service.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from custos.models import UsageDaily, UsageRecord

RECORDS = cast(sa.Table, UsageRecord.__table__)
DAILY = cast(sa.Table, UsageDaily.__table__)
MINUTES = {"hour": 60, "day": 1440}
_DIMENSIONS = (
    "tenant_id",
    "principal_type",
    "principal_id",
    "route",
    "method",
    "status",
    "latency_bucket",
)
_SUMS = ("requests", "duration_ms", "request_bytes", "response_bytes")


@dataclass(frozen=True, slots=True)
class UsageFilter:
    tenant_id: str | None = None  # None: every tenant (platform view, system session)
    principal_id: str | None = None
    route: str | None = None
    method: str | None = None
    status_class: int | None = None  # 2 for 2xx


@dataclass(frozen=True, slots=True)
class Cell:
    bucket: int
    group: Any
    status_class: int
    latency_bucket: int
    requests: int
    duration_ms: float
    request_bytes: int
    response_bytes: int


def _source(granularity: str, first: int, end: int, where: UsageFilter) -> sa.Subquery:
    """Rows of [first, end) buckets: minute rows, and for days also the rolled-up ones. The
    tenant and caller filters go into each branch, where the indexes are."""
    per = MINUTES[granularity]
    parts: list[sa.Select[Any]] = []
    for table, period, scale in ((RECORDS, "minute", per), (DAILY, "day", 1)):
        if table is DAILY and granularity != "day":
            continue
        column = table.c[period]
        part = sa.select(
            (column // scale if scale != 1 else column).label("bucket"),
            *[table.c[name] for name in (*_DIMENSIONS, *_SUMS)],
        ).where(column >= first * scale, column < end * scale)
        if where.tenant_id is not None:
            part = part.where(table.c.tenant_id == where.tenant_id)
        if where.principal_id is not None:
            part = part.where(table.c.principal_id == where.principal_id)
        parts.append(part)
    return sa.union_all(*parts).subquery("usage")


async def cells(
    session: AsyncSession,
    *,
    granularity: str,
    first: int,
    end: int,
    group_by: str | None,
    where: UsageFilter,
) -> Sequence[Cell]:
    src = _source(granularity, first, end, where)
    status_class = src.c.status // 100
    group: sa.ColumnElement[Any] = {
        None: sa.null(),
        "route": src.c.route,
        "method": src.c.method,
        "status_class": status_class,
        "principal": src.c.principal_id,
        "api_key": src.c.principal_id,
        "tenant": src.c.tenant_id,
    }[group_by]
    stmt = sa.select(
        src.c.bucket,
        group.label("grp"),
        status_class.label("cls"),
        src.c.latency_bucket,
        sa.func.sum(src.c.requests),
        sa.func.sum(src.c.duration_ms),
        sa.func.sum(src.c.request_bytes),
        sa.func.sum(src.c.response_bytes),
    ).group_by(
        src.c.bucket, sa.literal_column("grp"), sa.literal_column("cls"), src.c.latency_bucket
    )
    if group_by == "api_key":
        stmt = stmt.where(src.c.principal_type == "api_key")
    if where.route is not None:
        stmt = stmt.where(src.c.route == where.route)
    if where.method is not None:
        stmt = stmt.where(src.c.method == where.method)
    if where.status_class is not None:
        stmt = stmt.where(status_class == where.status_class)
    rows = (await session.execute(stmt)).all()
    return [
        Cell(
            bucket=int(row[0]),
            group=row[1],
            status_class=int(row[2]),
            latency_bucket=int(row[3]),
            requests=int(row[4]),
            duration_ms=float(row[5]),
            request_bytes=int(row[6]),
            response_bytes=int(row[7]),
        )
        for row in rows
    ]


async def roll_up(session: AsyncSession, before_day: int, *, postgres: bool) -> int:
    """Move minute rows of days before `before_day` into day rows; returns day rows written."""
    cutoff = RECORDS.c.minute < before_day * 1440
    dims = [RECORDS.c[name] for name in _DIMENSIONS]
    day = (RECORDS.c.minute // 1440).label("day")
    if postgres:
        # One statement: the rows deleted are exactly the rows summed, even if a late flush
        # inserts more for those days meanwhile (they are moved by the next run).
        moved = (
            sa.delete(RECORDS)
            .where(cutoff)
            .returning(*dims, RECORDS.c.minute, *[RECORDS.c[n] for n in _SUMS])
            .cte("moved")
        )
        summed = sa.select(
            *[moved.c[n] for n in _DIMENSIONS],
            (moved.c.minute // 1440).label("day"),
            *[sa.func.sum(moved.c[n]) for n in _SUMS],
        ).group_by(*[moved.c[n] for n in _DIMENSIONS], sa.literal_column("day"))
        result = await session.execute(
            sa.insert(DAILY).from_select([*_DIMENSIONS, "day", *_SUMS], summed)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
    # SQLite: the write lock is held from the first statement (BEGIN IMMEDIATE), so nothing
    # can be inserted between the copy and the delete.
    summed = (
        sa.select(*dims, day, *[sa.func.sum(RECORDS.c[n]) for n in _SUMS])
        .where(cutoff)
        .group_by(*dims, sa.literal_column("day"))
    )
    result = await session.execute(
        sa.insert(DAILY).from_select([*_DIMENSIONS, "day", *_SUMS], summed)
    )
    await session.execute(sa.delete(RECORDS).where(cutoff))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def purge_daily(session: AsyncSession, before_day: int) -> int:
    result = await session.execute(sa.delete(DAILY).where(DAILY.c.day < before_day))
    return int(result.rowcount)  # type: ignore[attr-defined]
