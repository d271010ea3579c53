from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from custos.kit.types import JSONType, UTCDateTime
from custos.models.base import Base


class EventOutbox(Base):
    """PostgreSQL: committed events waiting for their `events.dispatch` job.

    The transaction that writes events adds one row naming them; a worker turns the rows
    into dispatch jobs, many transactions' events to a job (event/outbox.py). A job row of
    procrastinate's costs its NOTIFY, which serialises commits, and a history row; this row
    costs one index entry. The embedded default (SQLite) queues its dispatch jobs through
    `job_outbox` and does not use this table.
    """

    __tablename__ = "event_outbox"

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    # No foreign key: a tenant's deletion may leave rows, whose jobs then find no events.
    tenant_id: Mapped[str] = mapped_column(sa.String(40), nullable=False)
    event_ids: Mapped[list[str]] = mapped_column(JSONType, nullable=False)
    queued_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, server_default=sa.func.now()
    )
