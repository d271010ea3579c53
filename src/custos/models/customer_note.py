from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from custos.models.base import Base, TenantOwned, Timestamped


class CustomerNote(TenantOwned, Timestamped, Base):
    __tablename__ = "customer_notes"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    customer_id: Mapped[str] = mapped_column(
        sa.String(40),
        sa.ForeignKey("customers.id", ondelete="CASCADE"),
        index=True,
        nullable=False,
    )
    author_type: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    author_id: Mapped[str | None] = mapped_column(sa.String(40))
    body: Mapped[str] = mapped_column(sa.Text, nullable=False)
