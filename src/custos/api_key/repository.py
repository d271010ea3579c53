from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from custos.models import ApiKey


class ApiKeyRepository:
    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id

    async def get(self, key_id: str) -> ApiKey | None:
        stmt = sa.select(ApiKey).where(ApiKey.tenant_id == self.tenant_id, ApiKey.id == key_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    def list_statement(self, *, include_revoked: bool = False) -> sa.Select[tuple[ApiKey]]:
        stmt = sa.select(ApiKey).where(ApiKey.tenant_id == self.tenant_id)
        if not include_revoked:
            stmt = stmt.where(ApiKey.revoked_at.is_(None))
        return stmt
