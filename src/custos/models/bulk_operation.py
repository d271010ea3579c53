from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from custos.kit.types import JSONType, UTCDateTime
from custos.models.base import Base, TenantOwned, Timestamped


class BulkOperation(TenantOwned, Timestamped, Base):
    """One import or export, and everything needed to resume it after a crash: the
    checkpoint (last row committed) moves in the same transaction as the rows it covers."""

    __tablename__ = "bulk_operations"
    __table_args__ = (sa.Index("ix_bulk_operations_status_lease", "status", "lease_expires_at"),)

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(10), nullable=False)
    resource: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    format: Mapped[str] = mapped_column(sa.String(10), nullable=False)
    mode: Mapped[str | None] = mapped_column(sa.String(10))
    status: Mapped[str] = mapped_column(sa.String(12), nullable=False)
    # Mapping, defaults, match key, filters, fields: what the request asked for.
    options: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    file_name: Mapped[str | None] = mapped_column(sa.String(255))
    source_key: Mapped[str | None] = mapped_column(sa.String(255))
    result_key: Mapped[str | None] = mapped_column(sa.String(255))
    size_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    total_rows: Mapped[int | None] = mapped_column(sa.Integer)
    checkpoint: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    rows_processed: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    created: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    updated: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    skipped: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    failed: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    # Who runs it now, until when: a worker that dies stops renewing and another takes over.
    lease_owner: Mapped[str | None] = mapped_column(sa.String(80))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(sa.String(500))
    actor_type: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    actor_id: Mapped[str | None] = mapped_column(sa.String(40))
    request_id: Mapped[str | None] = mapped_column(sa.String(128))


class BulkOperationError(TenantOwned, Base):
    """A rejected row: where and why, never the row's content."""

    __tablename__ = "bulk_operation_errors"
    __table_args__ = (sa.Index("ix_bulk_operation_errors_operation_row", "operation_id", "row"),)

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    operation_id: Mapped[str] = mapped_column(
        sa.String(40), sa.ForeignKey("bulk_operations.id", ondelete="CASCADE"), nullable=False
    )
    row: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    field: Mapped[str | None] = mapped_column(sa.String(100))
    reason: Mapped[str] = mapped_column(sa.String(300), nullable=False)
