from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from custos.kit.types import JSONType, UTCDateTime
from custos.models.base import Base, TenantOwned, Timestamped


class Customer(TenantOwned, Timestamped, Base):
    __tablename__ = "customers"
    __table_args__ = (
        # Unique among live records only: a soft-deleted record frees its email.
        sa.Index(
            "uq_customers_tenant_email_live",
            "tenant_id",
            "email",
            unique=True,
            sqlite_where=sa.text("deleted_at IS NULL AND email IS NOT NULL"),
            postgresql_where=sa.text("deleted_at IS NULL AND email IS NOT NULL"),
        ),
        sa.Index(
            "uq_customers_tenant_external_id",
            "tenant_id",
            "external_id",
            unique=True,
            sqlite_where=sa.text("external_id IS NOT NULL"),
            postgresql_where=sa.text("external_id IS NOT NULL"),
        ),
        sa.Index("ix_customers_tenant_phone_e164", "tenant_id", "phone_e164"),
        sa.Index("ix_customers_tenant_email_key", "tenant_id", "email_key"),
    )

    # No index of its own: every index of the table but the primary key starts with it.
    tenant_id: Mapped[str] = mapped_column(
        sa.String(40), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )
    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    external_id: Mapped[str | None] = mapped_column(sa.String(128))
    email: Mapped[str | None] = mapped_column(sa.String(320))
    # The mailbox the email reaches (`j.doe+news@gmail.com` -> `jdoe@gmail.com`): records
    # sharing it are probably one person, though their emails differ.
    email_key: Mapped[str | None] = mapped_column(sa.String(320))
    full_name: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    phone: Mapped[str | None] = mapped_column(sa.String(40))
    phone_e164: Mapped[str | None] = mapped_column(sa.String(20))
    company: Mapped[str | None] = mapped_column(sa.String(200))
    address: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    customer_type: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    status: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    tags: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    # "metadata" is reserved on declarative classes; the column keeps the API's name.
    attributes: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONType, nullable=False, default=dict
    )
    order_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    total_order_value: Mapped[Decimal] = mapped_column(
        sa.Numeric(16, 2), nullable=False, default=Decimal("0")
    )
    currency: Mapped[str | None] = mapped_column(sa.String(3))
    complaint_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    last_order_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set on a record merged into another (and soft-deleted); cleared when the merge is undone.
    merged_into_id: Mapped[str | None] = mapped_column(sa.String(40))
    # Lower-cased name, email, company and phone digits: what `?q=` searches (trigram-indexed
    # on PostgreSQL).
    search_text: Mapped[str] = mapped_column(sa.Text, nullable=False, default="")
    # Set when the record was anonymised: kept for statistics, its personal data replaced.
    anonymized_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped on every change; the ETag is derived from it.
    version: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=1)
