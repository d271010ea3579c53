"""Export: everything Custos holds on a person, from every registered holder."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from custos.kit.time import utcnow
from custos.privacy.erasure import subject_of
from custos.privacy.holders import Context, registered
from custos.privacy.requests import subject_record
from custos.runtime import Runtime


async def export(
    session: AsyncSession, runtime: Runtime, tenant_id: str, customer_id: str
) -> dict[str, Any]:
    await subject_record(session, tenant_id, customer_id)
    ctx = Context(
        session=session, runtime=runtime, subject=await subject_of(session, tenant_id, customer_id)
    )
    holders: dict[str, list[dict[str, Any]]] = {}
    for holder in registered():
        rows = await holder.export(ctx)
        if rows is not None:
            holders[holder.name] = rows
    return {"customer_id": customer_id, "generated_at": utcnow(), "holders": holders}
