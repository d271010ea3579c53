from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from custos.kit.time import utcnow
from custos.kit.types import UTCDateTime
from custos.models.base import Base, TenantOwned


class CustomerStatIncrement(TenantOwned, Base):
    """An increment already applied, so an order or complaint service can retry safely."""

    __tablename__ = "customer_stat_increments"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "increment_id"),)

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    increment_id: Mapped[str] = mapped_column(sa.String(128), nullable=False)
    customer_id: Mapped[str] = mapped_column(
        sa.String(40), sa.ForeignKey("customers.id", ondelete="CASCADE"), index=True, nullable=False
    )
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
