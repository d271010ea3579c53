from __future__ import annotations

from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from custos.kit.types import JSONType
from custos.models.base import Base, Timestamped


class TenantPlan(StrEnum):
    starter = "starter"
    pro = "pro"
    enterprise = "enterprise"


class TenantStatus(StrEnum):
    active = "active"
    suspended = "suspended"
    cancelled = "cancelled"


class Tenant(Timestamped, Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(63), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    plan: Mapped[str] = mapped_column(sa.String(20), nullable=False, default=TenantPlan.starter)
    status: Mapped[str] = mapped_column(sa.String(20), nullable=False, default=TenantStatus.active)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    # Overrides of the plan's rate limits by window ("per_minute", "per_hour", "per_day");
    # null: the plan's limits as configured.
    rate_limits: Mapped[dict[str, int] | None] = mapped_column(JSONType)
