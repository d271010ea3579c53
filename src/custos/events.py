"""The dotted event vocabulary: every event type Custos writes to its event log.

Each type names the Pydantic model of its payload and an example of it; the catalogue
(`GET /api/v1/docs/events`) publishes the JSON schema generated from the model, and the
tests check every example and every payload written against it. Adding a type is two lines:
the payload model (in the feature's schemas.py) and a `define(...)` here.

Payloads are versioned per type (`schema_version`); a change a receiver could trip on gets a
new version, never a silent reshape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from custos.api_key.schemas import EXAMPLE_API_KEY, ApiKeyPayload
from custos.bulk.schemas import EXAMPLE_BULK_OPERATION, BulkCompletedPayload
from custos.consent.schemas import ConsentEvent, LegalBasis
from custos.customer.schemas import (
    EXAMPLE_CUSTOMER,
    CustomerDeletedPayload,
    CustomerMergedPayload,
    CustomerMergeUndonePayload,
    CustomerPayload,
    CustomerUpdatedPayload,
)
from custos.event.schemas import TestEventPayload
from custos.feedback.schemas import (
    EXAMPLE_FEEDBACK,
    FeedbackCreatedPayload,
    FeedbackStatus,
    FeedbackUpdatedPayload,
)
from custos.privacy.schemas import (
    ErasureCompletedEvent,
    ErasureReport,
    PrivacyRequestEvent,
    RequestStatus,
    RequestType,
)
from custos.webhook.schemas import WebhookDisabledPayload, WebhookTestPayload

NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


@dataclass(frozen=True, slots=True)
class EventType:
    name: str
    description: str
    payload: type[BaseModel]
    example: BaseModel
    schema_version: int = 1


CATALOGUE: dict[str, EventType] = {}


def define(
    name: str,
    description: str,
    payload: type[BaseModel],
    example: BaseModel,
    *,
    schema_version: int = 1,
) -> EventType:
    """Add a type to the catalogue. `example` is an instance of `payload`."""
    if not NAME.match(name) or len(name) > 64:
        raise ValueError(f"event type {name!r} is not a dotted lower-case name")
    if name in CATALOGUE:
        raise ValueError(f"event type {name!r} is defined twice")
    if not isinstance(example, payload):
        raise TypeError(f"the example of {name} is not a {payload.__name__}")
    CATALOGUE[name] = EventType(name, description, payload, example, schema_version)
    return CATALOGUE[name]


CUSTOMER_CREATED = define(
    "customer.created",
    "A customer record was created.",
    CustomerPayload,
    CustomerPayload(customer=EXAMPLE_CUSTOMER),
)
CUSTOMER_UPDATED = define(
    "customer.updated",
    "A customer record changed; `changed_fields` names what changed.",
    CustomerUpdatedPayload,
    CustomerUpdatedPayload(customer=EXAMPLE_CUSTOMER, changed_fields=["company", "tags"]),
)
CUSTOMER_DELETED = define(
    "customer.deleted",
    "A customer record was deleted (`hard` tells whether permanently).",
    CustomerDeletedPayload,
    CustomerDeletedPayload(customer=EXAMPLE_CUSTOMER, hard=False),
)
CUSTOMER_RESTORED = define(
    "customer.restored",
    "A soft-deleted customer record was restored.",
    CustomerPayload,
    CustomerPayload(customer=EXAMPLE_CUSTOMER),
)
CUSTOMER_MERGED = define(
    "customer.merged",
    "A secondary customer record was merged into a primary one.",
    CustomerMergedPayload,
    CustomerMergedPayload(
        customer=EXAMPLE_CUSTOMER,
        merge_id="mrg_01KAY1X4G6H8J0K2M4N6P8Q0R2",
        secondary_id="cus_01KAY1W9B1C3D5E7F9G1H3J5K7",
        moved_notes=2,
    ),
)
CUSTOMER_MERGE_UNDONE = define(
    "customer.merge_undone",
    "A merge was reversed: both records are as they were before it.",
    CustomerMergeUndonePayload,
    CustomerMergeUndonePayload(
        customer=EXAMPLE_CUSTOMER,
        merge_id="mrg_01KAY1X4G6H8J0K2M4N6P8Q0R2",
        secondary=EXAMPLE_CUSTOMER.model_copy(update={"id": "cus_01KAY1W9B1C3D5E7F9G1H3J5K7"}),
    ),
)
API_KEY_CREATED = define(
    "api_key.created",
    "An API key was issued (its secret is never part of an event).",
    ApiKeyPayload,
    ApiKeyPayload(api_key=EXAMPLE_API_KEY),
)
API_KEY_ROTATED = define(
    "api_key.rotated",
    "An API key got a new secret; the old one works until `previous_valid_until`.",
    ApiKeyPayload,
    ApiKeyPayload(api_key=EXAMPLE_API_KEY),
)
API_KEY_REVOKED = define(
    "api_key.revoked",
    "An API key was revoked.",
    ApiKeyPayload,
    ApiKeyPayload(api_key=EXAMPLE_API_KEY),
)
WEBHOOK_ENDPOINT_DISABLED = define(
    "webhook.endpoint_disabled",
    "A webhook endpoint was disabled by Custos: it answered 410 Gone, or failed for too long.",
    WebhookDisabledPayload,
    WebhookDisabledPayload(
        endpoint_id="whk_01KAY1Z2A4B6C8D0E2F4G6H8J0",
        url="https://hooks.example.com/custos",
        reason="failing",
        failing_since=datetime(2026, 11, 17, 8, 0, tzinfo=UTC),
    ),
)
WEBHOOK_TEST = define(
    "webhook.test",
    "A test message sent to one endpoint by POST /webhooks/{id}/test.",
    WebhookTestPayload,
    WebhookTestPayload(
        endpoint_id="whk_01KAY1Z2A4B6C8D0E2F4G6H8J0", message="A test message from Custos"
    ),
)
EVENT_TEST = define(
    "event.test",
    "A test event made by POST /events/trigger, delivered like any other event.",
    TestEventPayload,
    TestEventPayload(message="Hello from Custos"),
)
FEEDBACK_CREATED = define(
    "feedback.created",
    "Feedback was received; `duplicate_of_id` links a re-submission or near-copy to its original.",
    FeedbackCreatedPayload,
    FeedbackCreatedPayload(feedback=EXAMPLE_FEEDBACK),
)
FEEDBACK_UPDATED = define(
    "feedback.updated",
    "Feedback was triaged or retagged; `changed_fields` names what changed.",
    FeedbackUpdatedPayload,
    FeedbackUpdatedPayload(
        feedback=EXAMPLE_FEEDBACK.model_copy(
            update={"status": FeedbackStatus.triaged, "version": 2}
        ),
        changed_fields=["status"],
    ),
)
BULK_COMPLETED = define(
    "bulk.completed",
    "A bulk import or export finished (completed, failed or cancelled) with its counts.",
    BulkCompletedPayload,
    BulkCompletedPayload(operation=EXAMPLE_BULK_OPERATION),
)
CONSENT_GRANTED = define(
    "consent.granted",
    "A customer granted consent for a purpose (with legal basis and policy).",
    ConsentEvent,
    ConsentEvent(
        consent_id="cns_01KAY2A1B3C5D7E9F1G3H5J7K9",
        customer_id=EXAMPLE_CUSTOMER.id,
        consent_type="marketing",
        granted=True,
        legal_basis=LegalBasis.consent,
        policy_version="2026-10",
    ),
)
CONSENT_REVOKED = define(
    "consent.revoked",
    "A customer's consent for a purpose was revoked.",
    ConsentEvent,
    ConsentEvent(
        consent_id="cns_01KAY2B2C4D6E8F0G2H4J6K8M0",
        customer_id=EXAMPLE_CUSTOMER.id,
        consent_type="marketing",
        granted=False,
        legal_basis=LegalBasis.consent,
        policy_version="2026-10",
    ),
)


# Data subject requests: one event per transition of the status machine. Payloads carry the
# request and the customer id, never personal data.
def _request(status: RequestStatus, **more: Any) -> PrivacyRequestEvent:
    return PrivacyRequestEvent(
        request_id="dsr_01KAY2C3D5E7F9G1H3J5K7M9N1",
        customer_id=EXAMPLE_CUSTOMER.id,
        type=RequestType.erasure if "scheduled_for" in more else RequestType.access,
        status=status,
        **more,
    )


PRIVACY_REQUEST_RECEIVED = define(
    "privacy.request_received",
    "A data subject request (access, erasure, rectification) arrived.",
    PrivacyRequestEvent,
    _request(RequestStatus.received),
)
PRIVACY_REQUEST_VERIFIED = define(
    "privacy.request_verified",
    "The requester's identity was verified.",
    PrivacyRequestEvent,
    _request(RequestStatus.verified),
)
PRIVACY_REQUEST_PROCESSING = define(
    "privacy.request_processing",
    "Work on a data subject request started.",
    PrivacyRequestEvent,
    _request(RequestStatus.processing),
)
PRIVACY_REQUEST_COMPLETED = define(
    "privacy.request_completed",
    "An access or rectification request was completed.",
    PrivacyRequestEvent,
    _request(RequestStatus.completed),
)
PRIVACY_REQUEST_CANCELLED = define(
    "privacy.request_cancelled",
    "A data subject request was cancelled (an erasure, before it ran).",
    PrivacyRequestEvent,
    _request(RequestStatus.cancelled),
)
PRIVACY_REQUEST_FAILED = define(
    "privacy.request_failed",
    "A data subject request could not be completed.",
    PrivacyRequestEvent,
    _request(RequestStatus.failed),
)
PRIVACY_ERASURE_SCHEDULED = define(
    "privacy.erasure_scheduled",
    "An erasure was scheduled; it runs at `scheduled_for`.",
    PrivacyRequestEvent,
    _request(
        RequestStatus.scheduled,
        method="erase",
        scheduled_for=datetime(2026, 12, 31, 9, 0, tzinfo=UTC),
    ),
)
PRIVACY_ERASURE_COMPLETED = define(
    "privacy.erasure_completed",
    "A person was erased or anonymised; `tables` says what was done where (no personal data).",
    ErasureCompletedEvent,
    ErasureCompletedEvent(
        request_id="dsr_01KAY2C3D5E7F9G1H3J5K7M9N1",
        customer_id=EXAMPLE_CUSTOMER.id,
        method="erase",
        records=1,
        tables=[
            ErasureReport(
                table="customers", action="deleted", fields=["email", "full_name"], count=1
            ),
            ErasureReport(table="events", action="scrubbed", fields=["payload"], count=4),
        ],
        erased_at=datetime(2026, 12, 31, 9, 0, 4, tzinfo=UTC),
    ),
)
