from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, model_validator

from custos.kit.schemas import Schema
from custos.privacy.operators import OPERATORS
from custos.privacy.pii import PiiType

MAX_TEXT = 100_000
MAX_QUERY_TEXT = 4_000
MAX_TEXTS = 1_000


# -- detection and operators -----------------------------------------------------------------


class PiiEntity(Schema):
    type: PiiType
    start: int = Field(description="Offset of the first character (Unicode code points)")
    end: int = Field(description="Offset just past the last character")
    score: float = Field(ge=0, le=1)
    reason: str


class ScanOptions(Schema):
    min_score: float | None = Field(
        None, ge=0, le=1, description="Findings below this score are left out (tenant default)"
    )
    types: list[PiiType] | None = Field(None, description="Only these types (default: all)")
    thresholds: dict[PiiType, float] | None = Field(
        None, description="Per-type minimum scores, overriding min_score"
    )
    known_names: bool = Field(True, description="Also find the names of the tenant's own customers")


class PiiScanRequest(ScanOptions):
    text: str | None = Field(None, max_length=MAX_TEXT)
    texts: list[str] | None = Field(None, min_length=1, max_length=MAX_TEXTS)

    @model_validator(mode="after")
    def _one_of(self) -> PiiScanRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give either `text` or `texts`")
        if self.texts is not None and any(len(t) > MAX_TEXT for t in self.texts):
            raise ValueError(f"each text is at most {MAX_TEXT} characters")
        return self


class PiiScanResult(Schema):
    entities: list[PiiEntity]


class PiiScanBatchResult(Schema):
    results: list[PiiScanResult] = Field(description="One result per text, in order")


class OperatorChoice(Schema):
    operator: str
    options: dict[str, Any] = Field(default_factory=dict)


class RedactRequest(ScanOptions):
    text: str = Field(max_length=MAX_TEXT)
    operator: str = Field("mask", description=f"One of: {', '.join(OPERATORS)}")
    options: dict[str, Any] = Field(default_factory=dict, description="The operator's options")
    operators: dict[PiiType, OperatorChoice] = Field(
        default_factory=dict, description="Another operator for some types"
    )


class RedactResult(Schema):
    text: str
    operator: str
    entities: list[PiiEntity] = Field(description="What was found, at its place in the input")


class ReidentifyRequest(Schema):
    text: str = Field(max_length=MAX_TEXT, description="Text holding pse_… or enc_… tokens")


class ReidentifyResult(Schema):
    text: str
    restored: int = Field(description="Tokens turned back into their values")
    unresolved: int = Field(description="Tokens this tenant's keys did not make")


# -- data subject requests -------------------------------------------------------------------


class RequestType(StrEnum):
    access = "access"
    erasure = "erasure"
    rectification = "rectification"


class RequestStatus(StrEnum):
    received = "received"
    verified = "verified"
    scheduled = "scheduled"
    processing = "processing"
    completed = "completed"
    cancelled = "cancelled"
    failed = "failed"


class PrivacyRequestCreate(Schema):
    type: RequestType
    customer_id: str = Field(max_length=40)
    note: str | None = Field(None, max_length=2_000, description="What was asked, how received")


class Transition(Schema):
    status: RequestStatus = Field(description="The status to move to")
    immediate: bool = Field(
        False, description="Scheduling an erasure: run it now, skipping the grace period (admins)"
    )


class HistoryEntry(Schema):
    status: RequestStatus
    at: datetime
    actor_type: str
    actor_id: str | None


class PrivacyRequest(Schema):
    id: str
    customer_id: str
    type: RequestType
    status: RequestStatus
    method: str | None
    note: str | None
    requested_by_type: str
    requested_by_id: str | None
    scheduled_for: datetime | None
    completed_at: datetime | None
    attempts: int
    last_error: str | None
    history: list[HistoryEntry]
    result: dict[str, Any] | None = Field(
        description="For a completed erasure, the tombstone: what was erased where"
    )
    created_at: datetime
    updated_at: datetime


class ErasureReport(Schema):
    table: str
    action: str = Field(description="deleted, anonymised, scrubbed or retained")
    fields: list[str]
    count: int
    note: str | None = None


class Export(Schema):
    customer_id: str
    generated_at: datetime
    holders: dict[str, list[dict[str, Any]]] = Field(
        description="Every place Custos keeps data about the person, by table"
    )


# -- event payloads --------------------------------------------------------------------------


class PrivacyRequestEvent(BaseModel):
    """privacy.request_* and privacy.erasure_scheduled: the request, no personal data."""

    request_id: str
    customer_id: str
    type: RequestType
    status: RequestStatus
    method: str | None = None
    scheduled_for: datetime | None = None


class ErasureCompletedEvent(BaseModel):
    """privacy.erasure_completed: what was erased where, as counts and field names."""

    request_id: str
    customer_id: str
    method: str
    records: int
    tables: list[ErasureReport]
    erased_at: datetime
