from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, Field, field_validator

from custos.kit.schemas import Schema
from custos.webhook.filters import check_filter, check_pattern

MAX_EVENT_TYPES = 100
MAX_HEADERS = 20
# Header names and values Custos sets itself, or that would change how the request travels.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
        "expect",
        "user-agent",
    }
)
_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")


def _check_headers(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if len(value) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} headers")
    seen: set[str] = set()
    for name, content in value.items():
        lower = name.lower()
        if not _TOKEN.match(name):
            raise ValueError(f"{name!r} is not a valid header name")
        if lower in RESERVED_HEADERS or lower.startswith("webhook-"):
            raise ValueError(f"the header {name!r} is set by Custos")
        if lower in seen:
            raise ValueError(f"the header {name!r} is given twice")
        seen.add(lower)
        if len(content) > 1000 or any(ch in content for ch in "\r\n\0"):
            raise ValueError(f"the value of {name!r} is too long or has line breaks")
    return value


def _check_patterns(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    for pattern in value:
        check_pattern(pattern)
    return sorted(set(value))


class WebhookCreate(Schema):
    url: str = Field(min_length=1, max_length=2048, examples=["https://hooks.example.com/custos"])
    description: str | None = Field(None, max_length=500)
    event_types: list[str] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        max_length=MAX_EVENT_TYPES,
        description="Event types, or patterns: `customer.*` for a namespace, `*` for all",
        examples=[["customer.*", "api_key.revoked"]],
    )
    filter: dict[str, Any] | None = Field(
        None,
        description=(
            "Conditions on payload fields, all of which must hold: a dotted path and a value "
            "(equality) or one operator of eq, ne, in, not_in, contains, exists, gt, gte, lt, "
            "lte"
        ),
        examples=[{"customer.status": "active", "customer.tags": {"contains": "vip"}}],
    )
    enabled: bool = True
    rate_limit_per_second: int | None = Field(
        None, ge=1, le=10_000, description="At most this many messages a second; no limit if null"
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Sent with every message; kept encrypted and never shown again",
        examples=[{"X-Team": "crm"}],
    )

    _event_types = field_validator("event_types")(_check_patterns)
    _headers = field_validator("headers")(_check_headers)
    _filter = field_validator("filter")(check_filter)


class WebhookUpdate(Schema):
    """Only the fields given change; `null` clears description, filter and rate limit."""

    url: str | None = Field(None, min_length=1, max_length=2048)
    description: str | None = Field(None, max_length=500)
    event_types: list[str] | None = Field(None, min_length=1, max_length=MAX_EVENT_TYPES)
    filter: dict[str, Any] | None = None
    enabled: bool | None = Field(None, description="true re-enables a disabled endpoint")
    rate_limit_per_second: int | None = Field(None, ge=1, le=10_000)
    headers: dict[str, str] | None = Field(None, description="Replaces every custom header")

    _event_types = field_validator("event_types")(_check_patterns)
    _headers = field_validator("headers")(_check_headers)
    _filter = field_validator("filter")(check_filter)


class WebhookRotate(Schema):
    grace_period_seconds: int = Field(
        86_400,
        ge=0,
        le=7 * 86_400,
        description="How long messages also carry the old secret's signature (at most 7 days)",
    )


class Webhook(Schema):
    id: str
    url: str
    description: str | None
    event_types: list[str]
    filter: dict[str, Any] | None
    enabled: bool
    disabled_reason: str | None = Field(
        description="manual, gone (the endpoint answered 410) or failing (for too long)"
    )
    disabled_at: datetime | None
    rate_limit_per_second: int | None
    header_names: list[str] = Field(description="Custom headers sent (their values are hidden)")
    previous_secret_expires_at: datetime | None = Field(
        description="During a rotation's grace period, when the old secret stops signing"
    )
    failing_since: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime


class WebhookWithSecret(Webhook):
    secret: str = Field(description="whsec_…: shown this once, it cannot be read again")


class DeliveryStatus(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"


class Attempt(Schema):
    number: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    outcome: str = Field(description="succeeded, failed, refused (address not allowed) or gone")
    error: str | None
    response_body: str | None = Field(description="The start of the receiver's answer")


class Delivery(Schema):
    id: str
    endpoint_id: str
    event_id: str = Field(description="Also the message's `webhook-id`")
    event_type: str
    trigger: Literal["event", "replay", "test"]
    replay_id: str | None
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    succeeded_at: datetime | None
    created_at: datetime


class DeliveryWithAttempts(Delivery):
    attempt_log: list[Attempt]


class ReplayRequest(Schema):
    since: AwareDatetime
    until: AwareDatetime | None = Field(None, description="Up to now when absent")
    event_types: list[str] | None = Field(
        None, max_length=MAX_EVENT_TYPES, description="Only these; the endpoint's types if null"
    )

    _event_types = field_validator("event_types")(_check_patterns)


class ReplayResult(Schema):
    replay_id: str
    events: int = Field(description="How many events will be sent again")


class WebhookTest(Schema):
    event_type: str = Field(
        "webhook.test",
        max_length=64,
        description="webhook.test, or any catalogue type to receive its example",
    )


class WebhookDisabledPayload(Schema):
    endpoint_id: str
    url: str
    reason: Literal["gone", "failing"]
    failing_since: datetime | None


class WebhookTestPayload(Schema):
    endpoint_id: str
    message: str
