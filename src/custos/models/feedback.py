from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from custos.kit.types import JSONType, UTCDateTime
from custos.models.base import Base, TenantOwned, Timestamped


class Feedback(TenantOwned, Timestamped, Base):
    __tablename__ = "feedback"
    __table_args__ = (
        sa.Index("ix_feedback_tenant_customer_received", "tenant_id", "customer_id", "received_at"),
        sa.Index("ix_feedback_tenant_hash", "tenant_id", "content_hash"),
        sa.Index("ix_feedback_tenant_received", "tenant_id", "received_at"),
        sa.Index("ix_feedback_tenant_status", "tenant_id", "status"),
    )

    # No index of its own: every index of the table but the primary key starts with it.
    tenant_id: Mapped[str] = mapped_column(
        sa.String(40), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )
    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    # Feedback goes with the person: a hard-deleted customer takes theirs along.
    customer_id: Mapped[str | None] = mapped_column(
        sa.String(40), sa.ForeignKey("customers.id", ondelete="CASCADE")
    )
    feedback_type: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    subject: Mapped[str | None] = mapped_column(sa.String(200))
    content: Mapped[str] = mapped_column(sa.Text, nullable=False)
    source: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    rating: Mapped[int | None] = mapped_column(sa.SmallInteger)
    status: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    tags: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    attributes: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONType, nullable=False, default=dict
    )
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    sentiment_score: Mapped[float] = mapped_column(sa.Float, nullable=False)
    sentiment_label: Mapped[str] = mapped_column(sa.String(10), nullable=False)
    # SHA-256 of the normalised content: equal hashes from one customer are re-submissions.
    content_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    # The bottom-k MinHash sketch of the content's shingles (custos.feedback.dedup).
    sketch: Mapped[str] = mapped_column(sa.Text, nullable=False)
    duplicate_of_id: Mapped[str | None] = mapped_column(
        sa.String(40), sa.ForeignKey("feedback.id", ondelete="SET NULL")
    )
    duplicate_kind: Mapped[str | None] = mapped_column(sa.String(10))
    similarity: Mapped[float | None] = mapped_column(sa.Float)
    version: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=1)


class FeedbackBand(TenantOwned, Base):
    """The near-duplicate index: one row per band key of an item's text
    (custos.feedback.dedup.band_keys). Earlier items sharing a key with a new one are its
    candidates, found by the primary key's index instead of by comparing against all."""

    __tablename__ = "feedback_bands"
    # Look-ups by key (migration d5a7c3e9f1b8).
    __table_args__ = (sa.Index("ix_feedback_bands_tenant_band", "tenant_id", "band"),)
    # Keyed by item: ids grow with time, so new rows go at the index's end, and deleting an
    # item finds its rows by it. No foreign keys on PostgreSQL: checked on each of an item's
    # 16 rows they cost more than the rows; a trigger on feedback deletes an item's rows
    # with it (migration 5c2d8e4f6a17). SQLite keeps the first migration's foreign keys and
    # their cascade. TenantOwned's own index on tenant_id is not wanted here.
    tenant_id: Mapped[str] = mapped_column(sa.String(40), nullable=False)
    feedback_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    band: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
