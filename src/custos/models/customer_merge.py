from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from custos.kit.types import JSONType, UTCDateTime
from custos.models.base import Base, TenantOwned, Timestamped


class CustomerMerge(TenantOwned, Timestamped, Base):
    """One merge of a secondary record into a primary, with what undoing it needs."""

    __tablename__ = "customer_merges"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    primary_id: Mapped[str] = mapped_column(
        sa.String(40), sa.ForeignKey("customers.id", ondelete="CASCADE"), index=True, nullable=False
    )
    secondary_id: Mapped[str] = mapped_column(
        sa.String(40), sa.ForeignKey("customers.id", ondelete="CASCADE"), index=True, nullable=False
    )
    actor_type: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    actor_id: Mapped[str | None] = mapped_column(sa.String(40))
    choices: Mapped[dict[str, str]] = mapped_column(JSONType, nullable=False, default=dict)
    # Both records' columns before the merge, the notes that moved, and the primary's
    # version right after it: undo restores the columns and refuses if the primary moved on.
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    undone_by: Mapped[str | None] = mapped_column(sa.String(40))
