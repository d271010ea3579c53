"""The platform's overrides of a tenant's plan limits."""

from __future__ import annotations

from limits import RateLimitItem
from sqlalchemy.ext.asyncio import AsyncSession

from custos.api_key.schemas import RateLimits
from custos.audit import service as audit
from custos.auth.cache import invalidate_after_commit
from custos.auth.principal import Principal
from custos.models import Tenant
from custos.rate_limit.policy import describe
from custos.rate_limit.schemas import Limit, TenantRateLimits
from custos.runtime import Runtime
from custos.tenant import service as tenant_service


def view(runtime: Runtime, tenant: Tenant) -> TenantRateLimits:
    policy = runtime.traffic.policy
    overrides = tenant.rate_limits or None
    return TenantRateLimits(
        tenant_id=tenant.id,
        plan=tenant.plan,
        plan_limits=[_limit(i) for i in policy.plan_items(tenant.plan)],
        overrides=RateLimits.model_validate(overrides) if overrides else None,
        effective=[_limit(i) for i in policy.tenant_items(tenant.plan, overrides)],
    )


def _limit(item: RateLimitItem) -> Limit:
    return Limit(limit=item.amount, window_seconds=item.get_expiry(), description=describe(item))


async def get(runtime: Runtime, session: AsyncSession, tenant_id: str) -> TenantRateLimits:
    return view(runtime, await tenant_service.get(session, tenant_id))


async def replace(
    runtime: Runtime,
    session: AsyncSession,
    actor: Principal,
    tenant_id: str,
    overrides: RateLimits | None,
) -> TenantRateLimits:
    """Set (or with None, remove) the overrides; every process sees them within a second,
    because cached principals carry them and the tenant's entries are evicted everywhere."""
    tenant = await tenant_service.get(session, tenant_id)
    before = tenant.rate_limits or None
    values = overrides.model_dump(exclude_none=True) if overrides else {}
    tenant.rate_limits = values or None
    await session.flush()
    audit.record(
        session,
        actor,
        "tenant.rate_limits_updated",
        "tenant",
        tenant.id,
        tenant_id=tenant.id,
        changes={"rate_limits": {"from": before, "to": tenant.rate_limits}},
    )
    invalidate_after_commit(runtime.credentials, session, {f"tenant:{tenant.id}"})
    return view(runtime, tenant)
