from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from custos.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


class WebhookRepository:
    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id

    async def get(self, endpoint_id: str, *, for_update: bool = False) -> WebhookEndpoint | None:
        stmt = sa.select(WebhookEndpoint).where(
            WebhookEndpoint.tenant_id == self.tenant_id, WebhookEndpoint.id == endpoint_id
        )
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def count(self) -> int:
        stmt = sa.select(sa.func.count()).where(WebhookEndpoint.tenant_id == self.tenant_id)
        return int((await self.session.execute(stmt)).scalar_one())

    def list_statement(self, *, enabled: bool | None = None) -> sa.Select[tuple[WebhookEndpoint]]:
        stmt = sa.select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == self.tenant_id)
        if enabled is not None:
            stmt = stmt.where(WebhookEndpoint.enabled.is_(enabled))
        return stmt

    async def delivery(self, endpoint_id: str, delivery_id: str) -> WebhookDelivery | None:
        stmt = sa.select(WebhookDelivery).where(
            WebhookDelivery.tenant_id == self.tenant_id,
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.id == delivery_id,
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    def deliveries_statement(
        self,
        endpoint_id: str,
        *,
        status: str | None = None,
        event_type: str | None = None,
        event_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> sa.Select[tuple[WebhookDelivery]]:
        stmt = sa.select(WebhookDelivery).where(
            WebhookDelivery.tenant_id == self.tenant_id,
            WebhookDelivery.endpoint_id == endpoint_id,
        )
        if status:
            stmt = stmt.where(WebhookDelivery.status == status)
        if event_type:
            stmt = stmt.where(WebhookDelivery.event_type == event_type)
        if event_id:
            stmt = stmt.where(WebhookDelivery.event_id == event_id)
        if since:
            stmt = stmt.where(WebhookDelivery.created_at >= since)
        if until:
            stmt = stmt.where(WebhookDelivery.created_at < until)
        return stmt

    async def attempts(self, delivery_id: str) -> list[WebhookAttempt]:
        stmt = (
            sa.select(WebhookAttempt)
            .where(
                WebhookAttempt.tenant_id == self.tenant_id,
                WebhookAttempt.delivery_id == delivery_id,
            )
            .order_by(WebhookAttempt.started_at, WebhookAttempt.number)
        )
        return list((await self.session.execute(stmt)).scalars())
