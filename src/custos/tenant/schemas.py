from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import EmailStr, Field, field_validator

from custos.kit.schemas import Schema
from custos.models import TenantPlan, TenantStatus
from custos.privacy import settings as privacy_settings

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
MAX_SETTINGS_BYTES = 16_384


def _bounded_settings(value: dict[str, Any] | None) -> dict[str, Any] | None:
    import orjson

    if value is not None and len(orjson.dumps(value)) > MAX_SETTINGS_BYTES:
        raise ValueError(f"settings must be at most {MAX_SETTINGS_BYTES} bytes as JSON")
    if value is not None:
        privacy_settings.check(value)
    return value


class TenantCreate(Schema):
    name: str = Field(min_length=1, max_length=200)
    slug: str = Field(pattern=SLUG_PATTERN, examples=["acme"])
    plan: TenantPlan = TenantPlan.starter
    settings: dict[str, Any] = Field(default_factory=dict)
    admin_email: EmailStr | None = Field(None, description="Create the tenant's first admin")
    admin_password: str | None = Field(None, min_length=12, max_length=256)

    _settings = field_validator("settings")(_bounded_settings)


class TenantUpdate(Schema):
    name: str | None = Field(None, min_length=1, max_length=200)
    plan: TenantPlan | None = None
    status: TenantStatus | None = None
    settings: dict[str, Any] | None = None

    _settings = field_validator("settings")(_bounded_settings)


class Tenant(Schema):
    id: str
    slug: str
    name: str
    plan: TenantPlan
    status: TenantStatus
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime
