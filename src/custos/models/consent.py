from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from custos.kit.types import UTCDateTime
from custos.models.base import Base, TenantOwned


class Consent(TenantOwned, Base):
    """One grant or revocation of consent for a purpose. The history is the table; the
    current state of a purpose is its newest row."""

    __tablename__ = "consents"
    __table_args__ = (
        sa.Index(
            "ix_consents_tenant_customer_purpose", "tenant_id", "customer_id", "purpose", "id"
        ),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    customer_id: Mapped[str] = mapped_column(
        sa.String(40), sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False
    )
    purpose: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    granted: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    source: Mapped[str | None] = mapped_column(sa.String(100))
    legal_basis: Mapped[str] = mapped_column(sa.String(40), nullable=False)
    policy_version: Mapped[str | None] = mapped_column(sa.String(40))
    actor_type: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    actor_id: Mapped[str | None] = mapped_column(sa.String(40))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
