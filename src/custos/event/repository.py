from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from custos.models import Event


def type_condition(pattern: str) -> sa.ColumnElement[bool]:
    """`customer.created`, `customer.*` (a whole namespace) or `*`."""
    if pattern == "*":
        return sa.true()
    if pattern.endswith(".*"):
        return Event.type.startswith(pattern[:-1], autoescape=True)
    return Event.type == pattern


class EventRepository:
    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id

    async def get(self, event_id: str) -> Event | None:
        stmt = sa.select(Event).where(Event.tenant_id == self.tenant_id, Event.id == event_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def by_ids(self, event_ids: Sequence[str]) -> list[Event]:
        stmt = (
            sa.select(Event)
            .where(Event.tenant_id == self.tenant_id, Event.id.in_(event_ids))
            .order_by(Event.seq)
        )
        return list((await self.session.execute(stmt)).scalars())

    def list_statement(
        self,
        *,
        types: Sequence[str] = (),
        subject_type: str | None = None,
        subject_id: str | None = None,
        actor_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_seq: int | None = None,
        test: bool | None = None,
    ) -> sa.Select[tuple[Event]]:
        stmt = sa.select(Event).where(Event.tenant_id == self.tenant_id)
        if types:
            stmt = stmt.where(sa.or_(*(type_condition(t) for t in types)))
        if subject_type:
            stmt = stmt.where(Event.subject_type == subject_type)
        if subject_id:
            stmt = stmt.where(Event.subject_id == subject_id)
        if actor_id:
            stmt = stmt.where(Event.actor_id == actor_id)
        if since:
            stmt = stmt.where(Event.occurred_at >= since)
        if until:
            stmt = stmt.where(Event.occurred_at < until)
        if after_seq is not None:
            stmt = stmt.where(Event.seq > after_seq)
        if test is not None:
            stmt = stmt.where(Event.test.is_(test))
        return stmt
