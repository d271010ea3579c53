from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
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
from custos.kit.routing import CustosRoute
from custos.usage import service
from custos.usage.repository import UsageFilter
from custos.usage.schemas import (
    Granularity,
    GroupBy,
    PlatformGroupBy,
    StatusClass,
    UsageReport,
)

router = APIRouter(route_class=CustosRoute, prefix="/usage", tags=["usage"])
key_router = APIRouter(route_class=CustosRoute, prefix="/api-keys", tags=["api keys"])
admin_router = APIRouter(route_class=CustosRoute, prefix="/usage", tags=["platform: usage"])

Since = Annotated[
    AwareDatetime | None,
    Query(description="Start (rounded down to the bucket); default 24 hours or 30 days back"),
]
Until = Annotated[AwareDatetime | None, Query(description="End (exclusive); default now")]
Route = Annotated[str | None, Query(max_length=200, description="Only this route template")]
Method = Annotated[str | None, Query(pattern=r"^[A-Z]{3,7}$", description="Only this method")]
Status = Annotated[StatusClass | None, Query(description="Only this status class")]


def _query(
    since: AwareDatetime | None,
    until: AwareDatetime | None,
    granularity: Granularity,
    group_by: str | None,
    where: UsageFilter,
) -> service.UsageQuery:
    return service.UsageQuery(
        since=since, until=until, granularity=granularity, group_by=group_by, where=where
    )


@router.get(
    "",
    response_model=UsageReport,
    summary="The tenant's requests per hour or day: totals, p50/p95 latency, error rate",
)
async def tenant_usage(
    auth: UsageRead,
    session: TenantSession,
    runtime: RuntimeDep,
    since: Since = None,
    until: Until = None,
    granularity: Granularity = Granularity.day,
    group_by: GroupBy | None = None,
    route: Route = None,
    method: Method = None,
    status_class: Status = None,
    principal_id: Annotated[
        str | None, Query(max_length=40, description="Only this API key or user")
    ] = None,
) -> UsageReport:
    where = UsageFilter(
        tenant_id=auth.tenant_id,
        principal_id=principal_id,
        route=route,
        method=method,
        status_class=service.status_class_number(status_class),
    )
    query = _query(since, until, granularity, group_by, where)
    return await service.report(session, runtime.settings, query)


@key_router.get(
    "/{key_id}/usage", response_model=UsageReport, summary="One API key's requests over time"
)
async def key_usage(
    key_id: str,
    auth: ApiKeysRead,
    session: TenantSession,
    runtime: RuntimeDep,
    since: Since = None,
    until: Until = None,
    granularity: Granularity = Granularity.day,
    group_by: GroupBy | None = None,
    route: Route = None,
    method: Method = None,
    status_class: Status = None,
) -> UsageReport:
    key = await api_key_service.get(session, auth.tenant_id, key_id)
    where = UsageFilter(
        tenant_id=auth.tenant_id,
        principal_id=key.id,
        api_keys_only=True,
        route=route,
        method=method,
        status_class=service.status_class_number(status_class),
    )
    query = _query(since, until, granularity, group_by, where)
    return await service.report(session, runtime.settings, query)


@admin_router.get(
    "", response_model=UsageReport, summary="Requests across the platform, by tenant if asked"
)
async def platform_usage(
    auth: PlatformAdmin,
    session: PlatformSession,
    runtime: RuntimeDep,
    since: Since = None,
    until: Until = None,
    granularity: Granularity = Granularity.day,
    group_by: PlatformGroupBy | None = None,
    tenant_id: Annotated[str | None, Query(max_length=40, description="Only this tenant")] = None,
    route: Route = None,
    method: Method = None,
    status_class: Status = None,
) -> UsageReport:
    where = UsageFilter(
        tenant_id=tenant_id,
        route=route,
        method=method,
        status_class=service.status_class_number(status_class),
    )
    query = _query(since, until, granularity, group_by, where)
    return await service.report(session, runtime.settings, query)
