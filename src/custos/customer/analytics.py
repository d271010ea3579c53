"""Tenant-wide customer figures, computed in the database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from custos.kit.time import utcnow
from custos.models import Customer

TOP = 10


def _bucket(dialect: str, period: str) -> sa.ColumnElement[str]:
    if dialect == "postgresql":
        return sa.func.to_char(
            sa.func.date_trunc(period, Customer.created_at),
            'IYYY-"W"IW' if period == "week" else "YYYY-MM",
        )
    # SQLite keeps UTC text; %W weeks start on Monday like ISO weeks (numbering differs at
    # year boundaries, which the label makes visible).
    return sa.func.strftime("%Y-W%W" if period == "week" else "%Y-%m", Customer.created_at)


async def compute(
    session: AsyncSession, tenant_id: str, *, inactive_days: int, weeks: int, months: int
) -> dict[str, Any]:
    dialect = session.get_bind().dialect.name
    live = sa.and_(Customer.tenant_id == tenant_id, Customer.deleted_at.is_(None))

    async def grouped(column: Any, since: Any = None) -> dict[str, int]:
        stmt = sa.select(column, sa.func.count()).where(live)
        if since is not None:
            stmt = stmt.where(Customer.created_at >= since)
        rows = (await session.execute(stmt.group_by(column).order_by(column))).all()
        return {str(key): int(count) for key, count in rows}

    now = utcnow()
    cutoff = now - timedelta(days=inactive_days)
    top = (
        await session.execute(
            sa.select(
                Customer.id, Customer.full_name, Customer.total_order_value, Customer.currency
            )
            .where(live, Customer.order_count > 0)
            .order_by(Customer.total_order_value.desc(), Customer.id)
            .limit(TOP)
        )
    ).all()
    counts = (
        await session.execute(
            sa.select(
                sa.func.count(),
                sa.func.count().filter(Customer.phone.is_(None)),
                sa.func.count().filter(Customer.phone.is_not(None), Customer.phone_e164.is_(None)),
                sa.func.count().filter(Customer.company.is_(None)),
                sa.func.count().filter(
                    sa.or_(Customer.last_order_at.is_(None), Customer.last_order_at < cutoff)
                ),
            ).where(live)
        )
    ).one()
    shared_phone = (
        sa.select(Customer.phone_e164)
        .where(live, Customer.phone_e164.is_not(None))
        .group_by(Customer.phone_e164)
        .having(sa.func.count() > 1)
        .subquery()
    )
    name_key = (
        sa.func.lower(Customer.full_name)
        + "|"
        + sa.func.lower(sa.func.coalesce(Customer.company, ""))
    )
    shared_name = (
        sa.select(name_key.label("k"))
        .where(live)
        .group_by(name_key)
        .having(sa.func.count() > 1)
        .subquery()
    )
    possible_duplicates = (
        await session.execute(
            sa.select(sa.func.count()).where(
                live,
                sa.or_(
                    Customer.phone_e164.in_(sa.select(shared_phone.c.phone_e164)),
                    name_key.in_(sa.select(shared_name.c.k)),
                ),
            )
        )
    ).scalar_one()
    return {
        "total": counts[0],
        "by_status": await grouped(Customer.status),
        "by_type": await grouped(Customer.customer_type),
        "new_per_week": await grouped(_bucket(dialect, "week"), now - timedelta(weeks=weeks)),
        "new_per_month": await grouped(
            _bucket(dialect, "month"), now - timedelta(days=31 * months)
        ),
        "top_by_order_value": [
            {
                "id": r.id,
                "full_name": r.full_name,
                "total_order_value": r.total_order_value,
                "currency": r.currency,
            }
            for r in top
        ],
        "no_order_in_days": {"days": inactive_days, "count": counts[4]},
        "data_quality": {
            "missing_phone": counts[1],
            "unparseable_phone": counts[2],
            "missing_company": counts[3],
            "possible_duplicates": possible_duplicates,
        },
    }
