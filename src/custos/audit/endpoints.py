from __future__ import annotations

from dataclasses import asdict

from fastapi import Query
from pydantic import AwareDatetime

from custos.audit.repository import AuditRepository
from custos.audit.schemas import AuditEntry, ChainVerification
from custos.audit.sealing import seal
from custos.audit.service import verify_chain
from custos.auth.dependencies import AuditRead, RuntimeDep, TenantSession
from custos.kit.pagination import Cursor, Limit, Page, keyset_page
from custos.kit.routing import CustosRouter
from custos.models import AuditLog

router = CustosRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=Page[AuditEntry], summary="Read the audit log, newest first")
async def list_audit(
    auth: AuditRead,
    runtime: RuntimeDep,
    session: TenantSession,
    limit: Limit = 50,
    cursor: Cursor = None,
    actor_id: str | None = Query(None, max_length=40),
    action: str | None = Query(None, max_length=80, description="Exact, or a prefix like user.*"),
    target_type: str | None = Query(None, max_length=40),
    target_id: str | None = Query(None, max_length=80),
    since: AwareDatetime | None = Query(None),
    until: AwareDatetime | None = Query(None),
) -> Page[AuditEntry]:
    # Rows committed a moment ago show with their place in the chain.
    await seal(runtime.db, auth.tenant_id)
    stmt = AuditRepository(session, auth.tenant_id).list_statement(
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        since=since,
        until=until,
    )
    items, next_cursor = await keyset_page(session, stmt, AuditLog.id, limit=limit, cursor=cursor)
    return Page[AuditEntry](
        items=[AuditEntry.model_validate(e) for e in items], next_cursor=next_cursor
    )


@router.get(
    "/verify",
    response_model=ChainVerification,
    summary="Recompute the hash chain and report the first broken link",
)
async def verify(auth: AuditRead, runtime: RuntimeDep, session: TenantSession) -> ChainVerification:
    await seal(runtime.db, auth.tenant_id)
    report = await verify_chain(session, auth.tenant_id)
    return ChainVerification.model_validate(asdict(report))
