from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from custos.models import AuditHead, AuditLog


class AuditRepository:
    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id

    async def lock_head(self) -> AuditHead:
        """The chain's end, locked until commit so appends to one chain never interleave."""
        stmt = sa.select(AuditHead).where(AuditHead.tenant_id == self.tenant_id).with_for_update()
        head = (await self.session.execute(stmt)).scalar_one_or_none()
        if head is None:
            head = AuditHead(tenant_id=self.tenant_id, seq=0, hash="")
            self.session.add(head)
        return head

    def list_statement(
        self,
        *,
        actor_id: str | None = None,
        action: str | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> sa.Select[tuple[AuditLog]]:
        stmt = sa.select(AuditLog).where(AuditLog.tenant_id == self.tenant_id)
        if actor_id:
            stmt = stmt.where(AuditLog.actor_id == actor_id)
        if action:
            # `customer.*` style prefixes filter a whole resource.
            if action.endswith(".*"):
                stmt = stmt.where(AuditLog.action.startswith(action[:-1], autoescape=True))
            else:
                stmt = stmt.where(AuditLog.action == action)
        if target_type:
            stmt = stmt.where(AuditLog.target_type == target_type)
        if target_id:
            stmt = stmt.where(AuditLog.target_id == target_id)
        if since:
            stmt = stmt.where(AuditLog.occurred_at >= since)
        if until:
            stmt = stmt.where(AuditLog.occurred_at < until)
        return stmt

    async def head(self) -> AuditHead | None:
        stmt = sa.select(AuditHead).where(AuditHead.tenant_id == self.tenant_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def stream_chain(self, batch: int = 1000) -> AsyncIterator[AuditLog]:
        last = 0
        while True:
            stmt = (
                sa.select(AuditLog)
                .where(AuditLog.tenant_id == self.tenant_id, AuditLog.seq > last)
                .order_by(AuditLog.seq)
                .limit(batch)
            )
            rows = (await self.session.execute(stmt)).scalars().all()
            if not rows:
                return
            for row in rows:
                yield row
            last = rows[-1].seq or last  # never None: the query took sealed rows only
