from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from custos.kit.email import Email
from custos.kit.pagination import MAX_LIMIT
from custos.kit.schemas import ErasedRecord, Schema

MAX_METADATA_BYTES = 16_384
MAX_METADATA_DEPTH = 5
MAX_TAGS = 50


class CustomerType(StrEnum):
    individual = "individual"
    business = "business"


class CustomerStatus(StrEnum):
    active = "active"
    inactive = "inactive"


class Address(Schema):
    line1: str | None = Field(None, max_length=200)
    line2: str | None = Field(None, max_length=200)
    city: str | None = Field(None, max_length=100)
    region: str | None = Field(None, max_length=100)
    postal_code: str | None = Field(None, max_length=20)
    country: str | None = Field(
        None, pattern=r"^[A-Za-z]{2}$", description="ISO 3166-1 alpha-2", examples=["GB"]
    )

    @field_validator("country")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value


def _depth(value: Any, level: int = 1) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level - 1


def check_metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if len(orjson.dumps(value)) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata must be at most {MAX_METADATA_BYTES} bytes as JSON")
    if _depth(value) > MAX_METADATA_DEPTH:
        raise ValueError(f"metadata may nest at most {MAX_METADATA_DEPTH} levels")
    return value


def clean_tags(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    seen: dict[str, str] = {}
    for tag in value:
        tag = tag.strip()
        if not tag or len(tag) > 50:
            raise ValueError("tags are 1 to 50 characters")
        seen.setdefault(tag.lower(), tag)
    return list(seen.values())


def _lower(value: str | None) -> str | None:
    return value.lower() if value else value


class CustomerCreate(Schema):
    external_id: str | None = Field(None, min_length=1, max_length=128)
    email: Email | None = None
    full_name: str = Field(min_length=1, max_length=200, examples=["Jane Doe"])
    phone: str | None = Field(None, min_length=1, max_length=40, examples=["+1234567890"])
    company: str | None = Field(None, max_length=200)
    address: Address | None = None
    customer_type: CustomerType = CustomerType.individual
    status: CustomerStatus = CustomerStatus.active
    tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS)
    metadata: dict[str, Any] = Field(default_factory=dict)

    _email = field_validator("email")(_lower)
    _tags = field_validator("tags")(clean_tags)
    _metadata = field_validator("metadata")(check_metadata)


class CustomerPatch(Schema):
    """JSON merge patch (RFC 7386): absent fields are kept, null clears an optional field,
    and `metadata` is merged key by key (a null value removes that key)."""

    external_id: str | None = Field(None, min_length=1, max_length=128)
    email: Email | None = None
    full_name: str | None = Field(None, min_length=1, max_length=200)
    phone: str | None = Field(None, min_length=1, max_length=40)
    company: str | None = Field(None, max_length=200)
    address: Address | None = None
    customer_type: CustomerType | None = None
    status: CustomerStatus | None = None
    tags: list[str] | None = Field(None, max_length=MAX_TAGS)
    metadata: dict[str, Any] | None = None

    _email = field_validator("email")(_lower)
    _tags = field_validator("tags")(clean_tags)


class Customer(Schema):
    id: str
    external_id: str | None
    email: str | None
    full_name: str
    phone: str | None
    phone_e164: str | None
    company: str | None
    address: Address | None
    customer_type: CustomerType
    status: CustomerStatus
    tags: list[str]
    metadata: dict[str, Any] = Field(validation_alias="attributes")
    order_count: int
    total_order_value: Decimal
    currency: str | None
    complaint_count: int
    last_order_at: datetime | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    version: int


class NoteCreate(Schema):
    body: str = Field(min_length=1, max_length=10_000)


class Note(Schema):
    id: str
    customer_id: str
    author_type: str
    author_id: str | None
    body: str
    created_at: datetime


class TimelineEntry(Schema):
    kind: str = Field(description="change (an audit entry) or note")
    at: datetime
    actor_type: str
    actor_id: str | None
    action: str | None = None
    changes: dict[str, Any] | None = None
    note_id: str | None = None
    body: str | None = None


class Statistics(Schema):
    order_count: int
    total_order_value: Decimal
    currency: str | None
    complaint_count: int
    last_order_at: datetime | None


class StatisticsIncrement(Schema):
    """What an order or complaint service reports. `increment_id` makes it idempotent: the
    same id applied twice counts once."""

    increment_id: str = Field(min_length=1, max_length=128, examples=["order-10042"])
    orders: int = Field(0, ge=0, le=10_000)
    order_value: Decimal = Field(
        Decimal("0"), ge=Decimal("-1000000000"), le=Decimal("1000000000"), decimal_places=2
    )
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$", examples=["EUR"])
    complaints: int = Field(0, ge=0, le=10_000)
    last_order_at: AwareDatetime | None = None


class StatisticsResult(Statistics):
    applied: bool = Field(description="False when this increment_id was applied before")


class CustomerSelfPatch(Schema):
    """What a customer may change on their own record (merge patch)."""

    full_name: str | None = Field(None, min_length=1, max_length=200)
    phone: str | None = Field(None, min_length=1, max_length=40)
    company: str | None = Field(None, max_length=200)
    address: Address | None = None


class BatchMode(StrEnum):
    create = "create"
    upsert = "upsert"


class CustomerBatch(Schema):
    mode: BatchMode = BatchMode.create
    # Items are validated one by one, so one bad item is reported by its index.
    items: list[dict[str, Any]] = Field(min_length=1, max_length=1000)


class BatchItemResult(Schema):
    index: int
    status: str = Field(description="created, updated or error")
    id: str | None = None
    errors: list[dict[str, Any]] | None = None


class BatchResult(Schema):
    created: int
    updated: int
    failed: int
    results: list[BatchItemResult]


MergeField = Literal[
    "external_id",
    "email",
    "full_name",
    "phone",
    "company",
    "address",
    "customer_type",
    "status",
    "metadata",
]
Side = Literal["primary", "secondary"]


class MergeRequest(Schema):
    primary: str = Field(max_length=40, description="The record that stays")
    secondary: str = Field(max_length=40, description="The record merged into it, then deleted")
    fields: dict[MergeField, Side] = Field(
        default_factory=dict,
        description=(
            "Which record each field comes from. Unnamed fields keep the primary's value,"
            " or the secondary's where the primary has none; for metadata, whose keys win."
        ),
        examples=[{"email": "secondary", "phone": "primary"}],
    )


class Merge(Schema):
    id: str
    primary_id: str
    secondary_id: str
    choices: dict[str, str]
    actor_type: str
    actor_id: str | None
    created_at: datetime
    undone_at: datetime | None


class MergeResult(Schema):
    merge: Merge
    customer: Customer = Field(description="The primary record after the merge")


class UndoResult(Schema):
    merge: Merge
    primary: Customer
    secondary: Customer


class DuplicatePair(Schema):
    score: float = Field(ge=0, le=1)
    reasons: dict[str, float] = Field(
        description="same_mailbox, same_phone, similar_name_same_company: each one's weight"
    )
    customers: list[Customer] = Field(min_length=2, max_length=2)


class CustomerListQuery(BaseModel):
    """`GET /customers` query parameters, validated as one model (one call, not seventeen).
    Unknown parameters are ignored, as on every list."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    limit: int = Field(50, ge=1, le=MAX_LIMIT, description="Page size (at most 1000)")
    cursor: str | None = Field(
        None, max_length=512, description="`next_cursor` from the previous page"
    )
    skip: int | None = Field(None, ge=0, le=100_000, description="Offset, for seed-era clients")
    sort: str | None = Field(
        None, max_length=200, description="Fields, comma-separated; `-` for descending"
    )
    q: str | None = Field(
        None, min_length=1, max_length=200, description="Name, email, company or phone, partial"
    )
    status: CustomerStatus | None = None
    customer_type: CustomerType | None = None
    tag: str | None = Field(None, max_length=50)
    company: str | None = Field(None, max_length=200)
    is_active: bool | None = None
    include_deleted: bool = False
    created_after: AwareDatetime | None = None
    created_before: AwareDatetime | None = None
    updated_since: AwareDatetime | None = None


# Event payloads (custos/events.py): the record as the API shows it, and what happened to it.


class CustomerPayload(Schema):
    customer: Customer | ErasedRecord = Field(
        description="The record as the API showed it; only its id once its person is erased"
    )


class CustomerUpdatedPayload(CustomerPayload):
    changed_fields: list[str] = Field(description="The API fields whose values changed")


class CustomerDeletedPayload(CustomerPayload):
    hard: bool = Field(description="True when the record was erased, not only marked deleted")


class CustomerMergedPayload(CustomerPayload):
    merge_id: str
    secondary_id: str = Field(description="The record merged into `customer`, now deleted")
    moved_notes: int


class CustomerMergeUndonePayload(CustomerPayload):
    merge_id: str
    secondary: Customer | ErasedRecord = Field(description="The secondary record, restored")


EXAMPLE_CUSTOMER = Customer.model_validate(
    {
        "id": "cus_01KAY1S6W3Z4T7X2M9QJ5N8B6C",
        "external_id": "crm-1042",
        "email": "jane.doe@example.com",
        "full_name": "Jane Doe",
        "phone": "+44 20 7946 0958",
        "phone_e164": "+442079460958",
        "company": "Example Ltd",
        "address": {"line1": "1 High Street", "city": "London", "country": "GB"},
        "customer_type": "individual",
        "status": "active",
        "tags": ["vip"],
        "attributes": {"segment": "enterprise"},
        "order_count": 3,
        "total_order_value": "249.90",
        "currency": "GBP",
        "complaint_count": 0,
        "last_order_at": "2026-11-20T14:03:11Z",
        "created_at": "2026-01-05T09:30:00Z",
        "updated_at": "2026-11-22T08:15:42Z",
        "deleted_at": None,
        "version": 7,
    }
)
