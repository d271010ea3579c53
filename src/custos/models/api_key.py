from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from custos.kit.types import JSONType, UTCDateTime
from custos.models.base import Base, TenantOwned, Timestamped


class ApiKey(TenantOwned, Timestamped, Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    # The first characters of the secret, kept so people can tell their keys apart.
    display_prefix: Mapped[str] = mapped_column(sa.String(24), nullable=False)
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True, nullable=False)
    # After a rotation the old secret keeps working until previous_valid_until.
    previous_key_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    previous_valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scopes: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str | None] = mapped_column(sa.String(40))
    # The key's own rate limits; null: none beyond its tenant's.
    rate_limit_per_minute: Mapped[int | None] = mapped_column(sa.Integer)
    rate_limit_per_hour: Mapped[int | None] = mapped_column(sa.Integer)
    rate_limit_per_day: Mapped[int | None] = mapped_column(sa.Integer)

    @property
    def rate_limits(self) -> dict[str, int] | None:
        """The set limits by window, as the API shows them; None when there are none."""
        limits = {
            "per_minute": self.rate_limit_per_minute,
            "per_hour": self.rate_limit_per_hour,
            "per_day": self.rate_limit_per_day,
        }
        return {window: n for window, n in limits.items() if n is not None} or None

    @rate_limits.setter
    def rate_limits(self, value: dict[str, int | None] | None) -> None:
        value = value or {}
        self.rate_limit_per_minute = value.get("per_minute")
        self.rate_limit_per_hour = value.get("per_hour")
        self.rate_limit_per_day = value.get("per_day")
