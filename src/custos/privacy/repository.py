from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from custos.models import Customer, PrivacyRequest

MAX_CANDIDATES = 2_000


async def known_names(session: AsyncSession, tenant_id: str, candidates: set[str]) -> list[str]:
    """Which of these lower-cased word runs are the full names of the tenant's customers."""
    wanted = sorted(candidates)[:MAX_CANDIDATES]
    found: list[str] = []
    for start in range(0, len(wanted), 500):
        rows = await session.scalars(
            sa.select(Customer.full_name)
            .where(
                Customer.tenant_id == tenant_id,
                sa.func.lower(Customer.full_name).in_(wanted[start : start + 500]),
                Customer.deleted_at.is_(None),
            )
            .distinct()
        )
        found.extend(rows)
    return found


async def privacy_request(
    session: AsyncSession, tenant_id: str, request_id: str, *, lock: bool = False
) -> PrivacyRequest | None:
    """The request; with `lock`, locked until the transaction ends and read afresh."""
    stmt = sa.select(PrivacyRequest).where(
        PrivacyRequest.tenant_id == tenant_id, PrivacyRequest.id == request_id
    )
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    found: PrivacyRequest | None = await session.scalar(stmt)
    return found
