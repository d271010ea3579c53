from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from custos.models import Customer

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
