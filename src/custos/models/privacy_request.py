from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from custos.kit.types import JSONType, UTCDateTime
from custos.models.base import Base, TenantOwned, Timestamped


class PrivacyRequest(TenantOwned, Timestamped, Base):
    """A data subject request (access, erasure, rectification) and its progress. For an
    erasure this row is also the durable state of the job and, once done, the tombstone:
    what was erased, where and when, with no personal data."""

    __tablename__ = "privacy_requests"
    __table_args__ = (
        sa.Index("ix_privacy_requests_due", "status", "scheduled_for"),
        sa.Index("ix_privacy_requests_tenant_customer", "tenant_id", "customer_id"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    # No foreign key: the request outlives the record it erased.
    customer_id: Mapped[str] = mapped_column(sa.String(40), nullable=False)
    type: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    status: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    # For erasures: "erase" removes the person, "anonymize" keeps the record without PII.
    method: Mapped[str | None] = mapped_column(sa.String(20))
    # Free text from the requester or staff; cleared when the person is erased.
    note: Mapped[str | None] = mapped_column(sa.Text)
    requested_by_type: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    requested_by_id: Mapped[str | None] = mapped_column(sa.String(40))
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(sa.String(300))
    # [{"status", "at", "actor_type", "actor_id"}]: every transition, oldest first.
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, nullable=False, default=list)
    # The tombstone: {"tables": [{"table", "action", "fields", "count"}], "erased_at"}.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
