from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from custos.kit.time import utcnow
from custos.kit.types import JSONType, UTCDateTime
from custos.models.base import Base, TenantOwned, Timestamped


class WebhookEndpoint(TenantOwned, Timestamped, Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    url: Mapped[str] = mapped_column(sa.String(2048), nullable=False)
    description: Mapped[str | None] = mapped_column(sa.String(500))
    # Event type names or patterns (`customer.*`, `*`).
    event_types: Mapped[list[str]] = mapped_column(JSONType, nullable=False)
    # Conditions on payload fields (webhook/filters.py); null delivers every matching event.
    filter: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    enabled: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(sa.String(40))
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rate_limit_per_second: Mapped[int | None] = mapped_column(sa.Integer)
    headers: Mapped[dict[str, str]] = mapped_column(JSONType, nullable=False, default=dict)
    # The signing secret, encrypted (kit/secretbox.py) and bound to the endpoint id. During a
    # rotation's grace period the previous one signs too.
    secret_sealed: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    previous_secret_sealed: Mapped[str | None] = mapped_column(sa.String(200))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The first failed attempt since the last success: failing for too long disables.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=1)
    created_by: Mapped[str | None] = mapped_column(sa.String(40))


class WebhookDelivery(TenantOwned, Base):
    """One event to one endpoint; `webhook_attempts` holds each try."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # One delivery per event and endpoint from the fan-out (batch ''), one per replay.
        sa.UniqueConstraint("endpoint_id", "event_id", "batch"),
        sa.Index("ix_webhook_deliveries_endpoint", "tenant_id", "endpoint_id", "id"),
        sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(
        sa.String(40), sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False
    )
    event_id: Mapped[str] = mapped_column(
        sa.String(40), sa.ForeignKey("events.id", ondelete="CASCADE"), nullable=False, index=True
    )
    event_type: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    # '' for the fan-out of a new event; the replay's id (rpl_…) or `test` otherwise.
    batch: Mapped[str] = mapped_column(sa.String(40), nullable=False, default="")
    # pending, succeeded, failed
    status: Mapped[str] = mapped_column(sa.String(20), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(sa.Integer)
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    succeeded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The job sending it now, until when: another job leaves it alone meanwhile, and the same
    # job, run again after its worker died, takes it back.
    claim: Mapped[str | None] = mapped_column(sa.String(40))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class WebhookAttempt(TenantOwned, Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(
        sa.String(40),
        sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    number: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    duration_ms: Mapped[float] = mapped_column(sa.Float, nullable=False)
    status_code: Mapped[int | None] = mapped_column(sa.Integer)
    # succeeded, failed, refused (the address policy), gone (410)
    outcome: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    error: Mapped[str | None] = mapped_column(sa.String(500))
    # The receiver's answer, cut to webhook_response_max_bytes.
    response_body: Mapped[str | None] = mapped_column(sa.Text)
