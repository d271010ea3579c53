from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, Field, field_validator

from custos.auth.scopes import SCOPES
from custos.kit.schemas import Schema

MAX_SCOPES = len(SCOPES)


def _known_scopes(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    unknown = [s for s in value if s not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(unknown[:5])}")
    return sorted(set(value))


MAX_RATE = 1_000_000_000


class RateLimits(Schema):
    """Requests allowed per window; an absent or null window is not limited on its own."""

    per_minute: int | None = Field(None, ge=1, le=MAX_RATE, examples=[600])
    per_hour: int | None = Field(None, ge=1, le=MAX_RATE, examples=[20_000])
    per_day: int | None = Field(None, ge=1, le=MAX_RATE)


class ApiKeyCreate(Schema):
    name: str = Field(min_length=1, max_length=100, examples=["ci"])
    scopes: list[str] = Field(min_length=1, max_length=MAX_SCOPES, examples=[["customers:read"]])
    expires_at: AwareDatetime | None = Field(None, description="No expiry when absent")
    rate_limits: RateLimits | None = Field(
        None, description="The key's own limits, on top of its tenant's; none when absent"
    )

    _scopes = field_validator("scopes")(_known_scopes)


class ApiKeyUpdate(Schema):
    name: str | None = Field(None, min_length=1, max_length=100)
    scopes: list[str] | None = Field(None, min_length=1, max_length=MAX_SCOPES)
    rate_limits: RateLimits | None = Field(
        None, description="Replaces the key's own limits; null removes them"
    )

    _scopes = field_validator("scopes")(_known_scopes)


class ApiKeyRotate(Schema):
    grace_period_seconds: int = Field(
        86_400, ge=0, description="How long the old secret keeps working (at most 7 days)"
    )


class ApiKey(Schema):
    id: str
    tenant_id: str
    name: str
    display_prefix: str
    scopes: list[str]
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    previous_valid_until: datetime | None = Field(
        None, description="During a rotation's grace period, when the old secret stops working"
    )
    rate_limits: RateLimits | None = Field(
        None, description="The key's own limits per window, on top of its tenant's"
    )
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class ApiKeyWithSecret(ApiKey):
    key: str = Field(description="The secret. It is shown this once and cannot be recovered.")


class ApiKeyPayload(Schema):
    """The payload of api_key.* events: the key without its secret."""

    api_key: ApiKey


EXAMPLE_API_KEY = ApiKey.model_validate(
    {
        "id": "key_01KAY1V2D8F5G3H7J9K2L4M6N8",
        "tenant_id": "ten_01KAY1R0A2B4C6D8E0F2G4H6J8",
        "name": "ci",
        "display_prefix": "cst_live_KSmf",
        "scopes": ["customers:read"],
        "expires_at": None,
        "revoked_at": None,
        "last_used_at": None,
        "previous_valid_until": None,
        "created_by": "usr_01KAY1R5M7N9P1Q3R5S7T9V1W3",
        "created_at": "2026-11-22T08:15:42Z",
        "updated_at": "2026-11-22T08:15:42Z",
    }
)
