from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from custos.kit.schemas import Schema


class Granularity(StrEnum):
    hour = "hour"
    day = "day"


class GroupBy(StrEnum):
    route = "route"
    method = "method"
    status_class = "status_class"
    principal = "principal"
    api_key = "api_key"


class PlatformGroupBy(StrEnum):
    route = "route"
    method = "method"
    status_class = "status_class"
    principal = "principal"
    api_key = "api_key"
    tenant = "tenant"


class StatusClass(StrEnum):
    informational = "1xx"
    success = "2xx"
    redirection = "3xx"
    client_error = "4xx"
    server_error = "5xx"


class UsageFigures(Schema):
    requests: int
    status_classes: dict[str, int] = Field(
        description="Requests by status class", examples=[{"2xx": 120, "4xx": 3}]
    )
    errors: int = Field(description="Answered 4xx or 5xx")
    error_rate: float = Field(description="errors / requests (0 when there were none)")
    server_errors: int = Field(description="Answered 5xx")
    latency_avg_ms: float | None
    latency_p50_ms: float | None = Field(
        description="Estimated from 20%-wide latency buckets (the bucket's mean)"
    )
    latency_p95_ms: float | None
    request_bytes: int
    response_bytes: int


class UsagePoint(UsageFigures):
    start: datetime = Field(description="Start of the hour or day (UTC)")
    group: str | None = Field(
        description="The route, method, status class, caller id or tenant id grouped by"
    )


class UsageReport(Schema):
    since: datetime = Field(description="Start of the first bucket")
    until: datetime = Field(description="End of the last bucket (exclusive)")
    granularity: Granularity
    group_by: str | None
    totals: UsageFigures
    series: list[UsagePoint] = Field(
        description="One point per bucket (and group), oldest first; without group_by every"
        " bucket of the range is present, with zeros where nothing was counted"
    )
