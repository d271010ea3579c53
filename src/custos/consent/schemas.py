from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from custos.kit.schemas import Schema

# Every tenant has these; `privacy.consent_purposes` in the tenant's settings adds more.
DEFAULT_PURPOSES = ("marketing", "data_processing", "data_sharing", "analytics")
PURPOSE_PATTERN = r"^[a-z][a-z0-9_]{1,63}$"


class LegalBasis(StrEnum):
    """GDPR Art. 6(1) (a) to (f)."""

    consent = "consent"
    contract = "contract"
    legal_obligation = "legal_obligation"
    vital_interests = "vital_interests"
    public_task = "public_task"
    legitimate_interests = "legitimate_interests"


class ConsentGrant(Schema):
    customer_id: str = Field(max_length=40)
    consent_type: str = Field(pattern=PURPOSE_PATTERN, examples=["marketing"])
    source: str | None = Field(
        None, max_length=100, description="Where it was given", examples=["signup-form"]
    )
    legal_basis: LegalBasis = LegalBasis.consent
    policy_version: str | None = Field(None, max_length=40, examples=["2026-01"])


class OwnConsentGrant(Schema):
    consent_type: str = Field(pattern=PURPOSE_PATTERN, examples=["marketing"])
    policy_version: str | None = Field(None, max_length=40)


class ConsentRecord(Schema):
    """One grant or revocation, as it happened."""

    id: str
    customer_id: str
    consent_type: str = Field(validation_alias="purpose")
    granted: bool
    source: str | None
    legal_basis: LegalBasis
    policy_version: str | None
    actor_type: str
    actor_id: str | None
    occurred_at: datetime


class ConsentState(Schema):
    consent_type: str
    granted: bool
    legal_basis: LegalBasis | None = None
    policy_version: str | None = None
    source: str | None = None
    updated_at: datetime | None = Field(None, description="Null: never asked")


class ConsentStatus(Schema):
    customer_id: str
    consents: list[ConsentState] = Field(description="Every purpose of the tenant")


class ConsentEvent(BaseModel):
    """consent.granted and consent.revoked: no personal data beyond the customer id."""

    consent_id: str
    customer_id: str
    consent_type: str
    granted: bool
    legal_basis: LegalBasis
    policy_version: str | None = None
