"""Writing domain events: added to the caller's transaction, so an event exists exactly when
the change it describes was committed."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from custos.auth.principal import Principal
from custos.events import EventType
from custos.kit.context import request_context
from custos.kit.ids import new_id
from custos.kit.time import utcnow
from custos.models import Event


def emit(
    session: AsyncSession,
    actor: Principal | None,
    event_type: EventType,
    payload: dict[str, Any],
    *,
    subject_type: str | None = None,
    subject_id: str | None = None,
    tenant_id: str | None = None,
) -> Event:
    tenant = tenant_id or (actor.tenant_id if actor else None)
    if tenant is None:
        raise ValueError("an event needs a tenant")
    event = Event(
        id=new_id("evt"),
        tenant_id=tenant,
        type=event_type.name,
        schema_version=event_type.schema_version,
        occurred_at=utcnow(),
        actor_type=actor.kind.value if actor else "system",
        actor_id=actor.id if actor else None,
        subject_type=subject_type,
        subject_id=subject_id,
        request_id=request_context.get().request_id,
        payload=payload,
    )
    session.add(event)
    return event
