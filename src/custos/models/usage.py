"""Usage metering: requests counted per minute (recent) and per day (rolled up).

A row is one combination of tenant, caller, route, method, status and latency bucket within
one minute (or day), written by one process's flush: the same combination may have several
rows, and every query sums them. Time is an integer (minutes or days since the Unix epoch),
so bucketing by hour or day is integer division on both databases.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from custos.models.base import Base

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class _UsageCounts:
    principal_type: Mapped[str] = mapped_column(sa.String(10), nullable=False)
    principal_id: Mapped[str] = mapped_column(sa.String(40), nullable=False)
    route: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    method: Mapped[str] = mapped_column(sa.String(10), nullable=False)
    status: Mapped[int] = mapped_column(sa.SmallInteger, nullable=False)
    # Index into usage/latency.py BOUNDS_MS; percentiles are estimated from these.
    latency_bucket: Mapped[int] = mapped_column(sa.SmallInteger, nullable=False)
    requests: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    duration_ms: Mapped[float] = mapped_column(sa.Float, nullable=False)
    request_bytes: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    response_bytes: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)


class UsageRecord(_UsageCounts, Base):
    __tablename__ = "usage_records"
    __table_args__ = (
        sa.Index("ix_usage_records_tenant_minute", "tenant_id", "minute"),
        sa.Index("ix_usage_records_tenant_principal_minute", "tenant_id", "principal_id", "minute"),
        sa.Index("ix_usage_records_minute", "minute"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    # Tenant-owned (row-level security) without the single-column index of TenantOwned: the
    # composite indexes above start with it.
    tenant_id: Mapped[str] = mapped_column(
        sa.String(40), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )
    minute: Mapped[int] = mapped_column(sa.Integer, nullable=False)


class UsageDaily(_UsageCounts, Base):
    __tablename__ = "usage_daily"
    __table_args__ = (
        sa.Index("ix_usage_daily_tenant_day", "tenant_id", "day"),
        sa.Index("ix_usage_daily_tenant_principal_day", "tenant_id", "principal_id", "day"),
        sa.Index("ix_usage_daily_day", "day"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(
        sa.String(40), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )
    day: Mapped[int] = mapped_column(sa.Integer, nullable=False)
