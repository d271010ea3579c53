"""A tenant's privacy settings, kept under `privacy` in the tenant's settings."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from custos.auth.principal import Principal
from custos.kit.schemas import Schema
from custos.models import Tenant
from custos.privacy.pii import DEFAULT_MIN_SCORE


class FreeTextPolicy(StrEnum):
    as_is = "as_is"
    mask = "mask"
    pseudonymize = "pseudonymize"


class PrivacySettings(Schema):
    free_text: FreeTextPolicy = Field(
        FreeTextPolicy.as_is,
        description="How free-text fields (notes, feedback) are stored: as given, with the "
        "personal data in them masked, or pseudonymised (reversible with privacy:reidentify)",
    )
    erasure_grace_days: int | None = Field(
        None, ge=0, le=365, description="Days before a scheduled erasure runs (default: 30)"
    )
    consent_purposes: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Purposes beyond the built-in ones",
    )
    min_score: float = Field(DEFAULT_MIN_SCORE, ge=0, le=1)

    @classmethod
    def validate_purposes(cls, purposes: list[str]) -> None:
        import re

        for purpose in purposes:
            if not re.fullmatch(r"[a-z][a-z0-9_]{1,63}", purpose):
                raise ValueError(f"consent purpose {purpose!r} must match [a-z][a-z0-9_]{{1,63}}")


def parse(tenant_settings: Mapping[str, Any] | None) -> PrivacySettings:
    raw = (tenant_settings or {}).get("privacy") or {}
    try:
        settings = PrivacySettings.model_validate(raw)
        PrivacySettings.validate_purposes(settings.consent_purposes)
    except (ValidationError, ValueError):
        # Validated when written (tenant settings); a stored value from before that check
        # falls back to the defaults rather than breaking every request.
        return PrivacySettings()
    return settings


def check(tenant_settings: Mapping[str, Any]) -> None:
    """Raises ValueError when the `privacy` part of tenant settings is invalid."""
    raw = tenant_settings.get("privacy")
    if raw is None:
        return
    try:
        settings = PrivacySettings.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"privacy settings: {problems}") from None
    PrivacySettings.validate_purposes(settings.consent_purposes)


async def tenant_settings(session: AsyncSession, actor: Principal) -> Mapping[str, Any]:
    if actor.tenant_settings is not None:
        return actor.tenant_settings
    tenant = await session.get(Tenant, actor.tenant_id)
    return tenant.settings if tenant else {}


def phone_region(tenant_settings: Mapping[str, Any] | None) -> str:
    region = (tenant_settings or {}).get("phone_default_region")
    return region.upper() if isinstance(region, str) and len(region) == 2 else "US"
