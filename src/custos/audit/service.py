"""Every state change writes one audit row in the same transaction.

`record()` only queues the entry; the queue is written just before the transaction commits,
with the tenant's chain head locked, so the lock is held for the commit alone and appends to
one tenant's chain are strictly ordered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from custos.audit.chain import GENESIS, row_hash
from custos.audit.repository import AuditRepository
from custos.auth.principal import Principal
from custos.db import database_of, on_after_commit, on_before_commit
from custos.kit.context import request_context
from custos.kit.ids import new_id
from custos.kit.masking import mask_field
from custos.kit.time import utcnow
from custos.models import AuditLog

_PENDING = "custos.audit.pending"
_AUDIT_LOGS = cast(sa.Table, AuditLog.__table__)


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """{field: {"from": old, "to": new}} for the fields that changed, PII masked."""
    return {
        name: {"from": mask_field(name, before.get(name)), "to": mask_field(name, value)}
        for name, value in after.items()
        if before.get(name) != value
    }


def record(
    session: AsyncSession,
    actor: Principal | None,
    action: str,
    target_type: str,
    target_id: str | None,
    *,
    tenant_id: str | None = None,
    changes: dict[str, Any] | None = None,
) -> None:
    entry = new_entry(actor, action, target_type, target_id, tenant_id=tenant_id, changes=changes)
    session.info.setdefault(_PENDING, []).append(entry)
    on_before_commit(session, "audit", _write_pending)


def new_entry(
    actor: Principal | None,
    action: str,
    target_type: str,
    target_id: str | None,
    *,
    tenant_id: str | None = None,
    changes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The audit row's values (unsealed), for record() or a caller writing it itself."""
    tenant = tenant_id or (actor.tenant_id if actor else None)
    if tenant is None:
        raise ValueError("an audit entry needs a tenant")
    ctx = request_context.get()
    entry: dict[str, Any] = {
        "id": new_id("aud"),
        "tenant_id": tenant,
        "occurred_at": utcnow(),
        "actor_type": actor.kind.value if actor else "system",
        "actor_id": actor.id if actor else None,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "request_id": ctx.request_id,
        "ip": ctx.ip,
        "user_agent": ctx.user_agent[:255] if ctx.user_agent else None,
        "changes": changes or {},
    }
    return entry


def pending_count(session: AsyncSession) -> int:
    return len(session.info.get(_PENDING, []))


def discard_after(session: AsyncSession, count: int) -> None:
    """Forget entries queued after `count`: their savepoint was rolled back."""
    del session.info.get(_PENDING, [])[count:]


async def _write_pending(session: AsyncSession) -> None:
    """One INSERT for the transaction's entries, unsealed: no chain lock is taken here."""
    pending: list[dict[str, Any]] = session.info.pop(_PENDING, [])
    if not pending:
        return
    await session.execute(sa.insert(_AUDIT_LOGS), pending)
    db = database_of(session)
    sealer = db.audit_sealer if db is not None else None
    if sealer is not None:
        tenants = {entry["tenant_id"] for entry in pending}

        async def request_sealing() -> None:
            sealer.request(tenants)

        on_after_commit(session, request_sealing)


@dataclass(frozen=True, slots=True)
class ChainReport:
    valid: bool
    checked: int
    head_seq: int
    first_broken_seq: int | None = None
    first_broken_id: str | None = None
    reason: str | None = None


async def verify_chain(session: AsyncSession, tenant_id: str) -> ChainReport:
    repo = AuditRepository(session, tenant_id)
    head = await repo.head()
    expected_prev = GENESIS
    expected_seq = 1
    checked = 0

    def broken(row: AuditLog | None, seq: int, reason: str) -> ChainReport:
        return ChainReport(
            valid=False,
            checked=checked,
            head_seq=head.seq if head else 0,
            first_broken_seq=seq,
            first_broken_id=row.id if row else None,
            reason=reason,
        )

    async for row in repo.stream_chain():
        if row.seq != expected_seq:
            return broken(row, expected_seq, "missing row: the sequence has a gap")
        if row.prev_hash != expected_prev:
            return broken(row, row.seq, "prev_hash does not match the previous row's hash")
        if row_hash(row) != row.hash:
            return broken(row, row.seq, "row content does not match its hash")
        expected_prev = row.hash
        expected_seq += 1
        checked += 1
    head_seq = head.seq if head else 0
    if head_seq != checked or (head is not None and head.hash != expected_prev):
        return broken(None, checked + 1, "rows after the last intact one are missing")
    return ChainReport(valid=True, checked=checked, head_seq=head_seq)
