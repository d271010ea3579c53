"""Notes on a customer, and the record's timeline (its audit history and notes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from custos.audit import service as audit
from custos.auth.principal import Principal
from custos.customer import service as customer_service
from custos.exceptions import NotFound
from custos.kit.ids import new_id
from custos.models import AuditLog, CustomerNote
from custos.privacy import settings as privacy_settings
from custos.privacy import text_to_store
from custos.privacy.keys import keys_for


async def list_notes(
    session: AsyncSession, actor: Principal, customer_id: str, limit: int
) -> Sequence[CustomerNote]:
    await customer_service.get(session, actor, customer_id)
    return await _newest_notes(session, actor.tenant_id, customer_id, limit)


async def add_note(
    session: AsyncSession, actor: Principal, customer_id: str, body: str
) -> CustomerNote:
    customer = await customer_service.get(session, actor, customer_id)
    # Stored as the tenant's privacy settings say: as given, masked or pseudonymised.
    stored = text_to_store(
        await privacy_settings.tenant_settings(session, actor),
        body,
        keys_for(session, actor.tenant_id),
        known_names=[customer.full_name],
    )
    note = CustomerNote(
        id=new_id("note"),
        tenant_id=actor.tenant_id,
        customer_id=customer_id,
        author_type=actor.kind.value,
        author_id=actor.id,
        body=stored,
    )
    session.add(note)
    await session.flush()
    # The note's text stays out of the audit row: it is free text, often personal.
    audit.record(
        session,
        actor,
        "customer.note_added",
        "customer",
        customer_id,
        changes={"note_id": {"from": None, "to": note.id}},
    )
    return note


async def delete_note(
    session: AsyncSession, actor: Principal, customer_id: str, note_id: str
) -> None:
    await customer_service.get(session, actor, customer_id)
    stmt = sa.select(CustomerNote).where(
        CustomerNote.tenant_id == actor.tenant_id,
        CustomerNote.customer_id == customer_id,
        CustomerNote.id == note_id,
    )
    note = (await session.execute(stmt)).scalar_one_or_none()
    if note is None:
        raise NotFound("No such note on this customer")
    await session.delete(note)
    await session.flush()
    audit.record(
        session,
        actor,
        "customer.note_deleted",
        "customer",
        customer_id,
        changes={"note_id": {"from": note_id, "to": None}},
    )


async def timeline(
    session: AsyncSession, actor: Principal, customer_id: str, limit: int
) -> list[dict[str, Any]]:
    """The record's audit history and notes, newest first."""
    await customer_service.get(session, actor, customer_id, include_deleted=True)
    events = (
        await session.execute(
            sa.select(AuditLog)
            .where(
                AuditLog.tenant_id == actor.tenant_id,
                AuditLog.target_type == "customer",
                AuditLog.target_id == customer_id,
            )
            .order_by(AuditLog.seq.desc())
            .limit(limit)
        )
    ).scalars()
    notes = await _newest_notes(session, actor.tenant_id, customer_id, limit)
    items: list[dict[str, Any]] = [
        {
            "kind": "change",
            "at": e.occurred_at,
            "action": e.action,
            "actor_type": e.actor_type,
            "actor_id": e.actor_id,
            "changes": e.changes,
        }
        for e in events
    ]
    items += [
        {
            "kind": "note",
            "at": n.created_at,
            "note_id": n.id,
            "actor_type": n.author_type,
            "actor_id": n.author_id,
            "body": n.body,
        }
        for n in notes
    ]
    items.sort(key=lambda item: item["at"], reverse=True)
    return items[:limit]


async def _newest_notes(
    session: AsyncSession, tenant_id: str, customer_id: str, limit: int
) -> Sequence[CustomerNote]:
    stmt = (
        sa.select(CustomerNote)
        .where(CustomerNote.tenant_id == tenant_id, CustomerNote.customer_id == customer_id)
        .order_by(CustomerNote.id.desc())
        .limit(limit)
    )
    return (await session.execute(stmt)).scalars().all()
