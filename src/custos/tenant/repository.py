from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from custos.models import Tenant


class TenantRepository:
    """Platform-level: tenants are not owned by a tenant, so this takes a system session."""

    def __init__(self, system_session: AsyncSession) -> None:
        self.session = system_session

    async def get(self, tenant_id: str) -> Tenant | None:
        return await self.session.get(Tenant, tenant_id)

    async def by_slug(self, slug: str) -> Tenant | None:
        stmt = sa.select(Tenant).where(Tenant.slug == slug)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    def list_statement(
        self, *, status: str | None = None, plan: str | None = None
    ) -> sa.Select[tuple[Tenant]]:
        stmt = sa.select(Tenant)
        if status:
            stmt = stmt.where(Tenant.status == status)
        if plan:
            stmt = stmt.where(Tenant.plan == plan)
        return stmt
