from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query
from pydantic import AwareDatetime

from custos.api_key import service as api_key_service
from custos.auth.dependencies import (
    ApiKeysRead,
    PlatformAdmin,
    PlatformSession,
    RuntimeDep,
    TenantSession,
    UsageRead,
)
from custos.kit.routing import CustosRouter
from custos.usage import service
from custos.usage.repository import UsageFilter
from custos.usage.schemas import (
    Granularity,
    GroupBy,
    PlatformGroupBy,
    StatusClass,
    UsageReport,
)

router = CustosRouter(prefix="/usage", tags=["usage"])
key_router = CustosRouter(prefix="/api-keys", tags=["api keys"])
admin_router = CustosRouter(prefix="/usage", tags=["platform: usage"])


@dataclass(frozen=True)
class Report:
    """The query parameters every usage report takes."""

    since: AwareDatetime | None
    until: AwareDatetime | None
    granularity: Granularity
    route: str | None
    method: str | None
    status_class: StatusClass | None

    def query(self, group_by: str | None, **where: str | None) -> service.UsageQuery:
        return service.UsageQuery(
            since=self.since,
            until=self.until,
            granularity=self.granularity,
            group_by=group_by,
            where=UsageFilter(
                route=self.route,
                method=self.method,
                status_class=int(self.status_class.value[0]) if self.status_class else None,
                **where,
            ),
        )


async def report_parameters(
    since: Annotated[
        AwareDatetime | None,
        Query(description="Start (rounded down to the bucket); default 24 hours or 30 days back"),
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="End (exclusive); default now")
    ] = None,
    granularity: Granularity = Granularity.day,
    route: Annotated[
        str | None, Query(max_length=200, description="Only this route template")
    ] = None,
    method: Annotated[
        str | None, Query(pattern=r"^[A-Z]{3,7}$", description="Only this method")
    ] = None,
    status_class: Annotated[StatusClass | None, Query(description="Only this class")] = None,
) -> Report:
    return Report(since, until, granularity, route, method, status_class)


ReportParameters = Annotated[Report, Depends(report_parameters)]


@router.get(
    "",
    response_model=UsageReport,
    summary="The tenant's requests per hour or day: totals, p50/p95 latency, error rate",
)
async def tenant_usage(
    auth: UsageRead,
    session: TenantSession,
    runtime: RuntimeDep,
    report: ReportParameters,
    group_by: GroupBy | None = None,
    principal_id: Annotated[
        str | None, Query(max_length=40, description="Only this API key or user")
    ] = None,
) -> UsageReport:
    query = report.query(group_by, tenant_id=auth.tenant_id, principal_id=principal_id)
    return await service.report(session, runtime.settings, query)


@key_router.get(
    "/{key_id}/usage", response_model=UsageReport, summary="One API key's requests over time"
)
async def key_usage(
    key_id: str,
    auth: ApiKeysRead,
    session: TenantSession,
    runtime: RuntimeDep,
    report: ReportParameters,
    group_by: GroupBy | None = None,
) -> UsageReport:
    key = await api_key_service.get(session, auth.tenant_id, key_id)
    query = report.query(group_by, tenant_id=auth.tenant_id, principal_id=key.id)
    return await service.report(session, runtime.settings, query)


@admin_router.get(
    "", response_model=UsageReport, summary="Requests across the platform, by tenant if asked"
)
async def platform_usage(
    auth: PlatformAdmin,
    session: PlatformSession,
    runtime: RuntimeDep,
    report: ReportParameters,
    group_by: PlatformGroupBy | None = None,
    tenant_id: Annotated[str | None, Query(max_length=40, description="Only this tenant")] = None,
) -> UsageReport:
    return await service.report(
        session, runtime.settings, report.query(group_by, tenant_id=tenant_id)
    )
