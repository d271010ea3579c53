from __future__ import annotations

from pydantic import Field

from custos.api_key.schemas import RateLimits
from custos.kit.schemas import Schema
from custos.models import TenantPlan


class Limit(Schema):
    limit: int = Field(description="Requests allowed in the window")
    window_seconds: int
    description: str = Field(examples=["600 per minute"])


class TenantRateLimits(Schema):
    tenant_id: str
    plan: TenantPlan
    plan_limits: list[Limit] = Field(description="The plan's limits, as configured")
    overrides: RateLimits | None = Field(
        description="The platform's overrides of the plan's windows; null: the plan's"
    )
    effective: list[Limit] = Field(description="What the tenant's requests are counted against")
