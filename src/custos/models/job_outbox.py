from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from custos.kit.time import utcnow
from custos.kit.types import JSONType, UTCDateTime
from custos.models.base import Base


class JobOutbox(Base):
    """A job deferred on the embedded default (SQLite), kept until it has run.

    procrastinate's in-memory queue there lives and dies with the process; this row is written
    in the transaction that deferred the job, so the job exists exactly when that transaction
    committed, and is queued again when the process starts. PostgreSQL does not use it: its
    jobs are rows of procrastinate's own table, written in the same transaction.
    """

    __tablename__ = "job_outbox"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    task_name: Mapped[str] = mapped_column(sa.String(128), nullable=False)
    queue_name: Mapped[str] = mapped_column(sa.String(128), nullable=False)
    args: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    priority: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    lock: Mapped[str | None] = mapped_column(sa.String(256))
    queueing_lock: Mapped[str | None] = mapped_column(sa.String(256))
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    # Set when the job failed for good (its retries spent): kept for inspection, not re-queued.
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    error: Mapped[str | None] = mapped_column(sa.String(500))
