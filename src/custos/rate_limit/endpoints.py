from __future__ import annotations

from custos.api_key.schemas import RateLimits
from custos.auth.dependencies import PlatformAdmin, PlatformSession, RuntimeDep
from custos.kit.routing import CustosRouter
from custos.rate_limit import service
from custos.rate_limit.schemas import TenantRateLimits

admin_router = CustosRouter(
    prefix="/tenants/{tenant_id}/rate-limits",
    tags=["platform: tenants"],
)


@admin_router.get(
    "", response_model=TenantRateLimits, summary="A tenant's rate limits: plan, overrides, in force"
)
async def get_rate_limits(
    tenant_id: str, auth: PlatformAdmin, session: PlatformSession, runtime: RuntimeDep
) -> TenantRateLimits:
    return await service.get(runtime, session, tenant_id)


@admin_router.put(
    "",
    response_model=TenantRateLimits,
    summary="Override the plan's limits for this tenant, window by window",
)
async def put_rate_limits(
    tenant_id: str,
    body: RateLimits,
    auth: PlatformAdmin,
    session: PlatformSession,
    runtime: RuntimeDep,
) -> TenantRateLimits:
    return await service.replace(runtime, session, auth, tenant_id, body)


@admin_router.delete(
    "", response_model=TenantRateLimits, summary="Remove the overrides: the plan's limits again"
)
async def delete_rate_limits(
    tenant_id: str, auth: PlatformAdmin, session: PlatformSession, runtime: RuntimeDep
) -> TenantRateLimits:
    return await service.replace(runtime, session, auth, tenant_id, None)
