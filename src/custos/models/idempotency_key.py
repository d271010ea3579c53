from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from custos.kit.time import utcnow
from custos.kit.types import JSONType, UTCDateTime
from custos.models.base import Base, TenantOwned


class IdempotencyKey(TenantOwned, Base):
    """A write made with an Idempotency-Key, and the response it got."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "principal_id", "key"),)

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    principal_id: Mapped[str] = mapped_column(sa.String(40), nullable=False)
    key: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    # Method, route and body, hashed: the same key with another request is a client bug.
    fingerprint: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    status_code: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    response: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    headers: Mapped[dict[str, str]] = mapped_column(JSONType, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, nullable=False, index=True
    )
