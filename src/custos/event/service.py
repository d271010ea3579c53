"""Writing domain events: added to the caller's transaction, so an event exists exactly when
the change it describes was committed.

Events are queued on the session and written with one INSERT just before the commit, like
audit entries: no ORM unit-of-work, no round trip per event.
"""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from custos.auth.principal import Principal
from custos.db import on_before_commit
from custos.events import EventType
from custos.kit.context import request_context
from custos.kit.ids import new_id
from custos.kit.time import utcnow
from custos.models import Event

_PENDING = "custos.events.pending"
_EVENTS = cast(sa.Table, Event.__table__)


def pending_count(session: AsyncSession) -> int:
    return len(session.info.get(_PENDING, []))


def discard_after(session: AsyncSession, count: int) -> None:
    """Forget events queued after `count`: their savepoint was rolled back."""
    del session.info.get(_PENDING, [])[count:]


def emit(
    session: AsyncSession,
    actor: Principal | None,
    event_type: EventType,
    payload: dict[str, Any],
    *,
    subject_type: str | None = None,
    subject_id: str | None = None,
    tenant_id: str | None = None,
) -> str:
    """Queue the event; returns its id."""
    event = new_row(
        actor,
        event_type,
        payload,
        subject_type=subject_type,
        subject_id=subject_id,
        tenant_id=tenant_id,
    )
    session.info.setdefault(_PENDING, []).append(event)
    on_before_commit(session, "events", _write_pending)
    return str(event["id"])


def new_row(
    actor: Principal | None,
    event_type: EventType,
    payload: Any,
    *,
    subject_type: str | None = None,
    subject_id: str | None = None,
    tenant_id: str | None = None,
) -> dict[str, Any]:
    """The event's values, for emit() or a caller writing the row itself."""
    tenant = tenant_id or (actor.tenant_id if actor else None)
    if tenant is None:
        raise ValueError("an event needs a tenant")
    event: dict[str, Any] = {
        "id": new_id("evt"),
        "tenant_id": tenant,
        "type": event_type.name,
        "schema_version": event_type.schema_version,
        "occurred_at": utcnow(),
        "actor_type": actor.kind.value if actor else "system",
        "actor_id": actor.id if actor else None,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "request_id": request_context.get().request_id,
        "payload": payload,
    }
    return event


async def _write_pending(session: AsyncSession) -> None:
    pending: list[dict[str, Any]] = session.info.pop(_PENDING, [])
    if pending:
        # Table-level insert: inserted in queue order, so `seq` follows it.
        await session.execute(sa.insert(_EVENTS), pending)
