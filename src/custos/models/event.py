from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from custos.kit.types import JSONType, UTCDateTime
from custos.models.base import Base, TenantOwned


class Event(TenantOwned, Base):
    """A domain event, written in the transaction that made the change it describes."""

    __tablename__ = "events"
    __table_args__ = (
        sa.Index("ix_events_tenant_seq", "tenant_id", "seq"),
        sa.Index("ix_events_tenant_type_seq", "tenant_id", "type", "seq"),
        sa.Index("ix_events_tenant_subject", "tenant_id", "subject_type", "subject_id"),
    )

    # Assigned by the database in insert order: increasing within each tenant (with gaps),
    # so receivers can order events without a per-tenant counter every writer would lock.
    # No index of its own: every index of the table that needs it starts with it.
    tenant_id: Mapped[str] = mapped_column(
        sa.String(40), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )
    seq: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    id: Mapped[str] = mapped_column(sa.String(40), unique=True, nullable=False)
    type: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    schema_version: Mapped[int] = mapped_column(sa.SmallInteger, nullable=False, default=1)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    actor_type: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    actor_id: Mapped[str | None] = mapped_column(sa.String(40))
    subject_type: Mapped[str | None] = mapped_column(sa.String(40))
    subject_id: Mapped[str | None] = mapped_column(sa.String(40))
    request_id: Mapped[str | None] = mapped_column(sa.String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    # Made by POST /events/trigger or a webhook test: consumers should not act on it.
    test: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
