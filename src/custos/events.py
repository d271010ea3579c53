"""The dotted event vocabulary: every event type Custos writes to its event log.

Payloads are versioned per type (`schema_version`); a change a receiver could trip on gets
a new version, never a silent reshape.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EventType:
    name: str
    description: str
    schema_version: int = 1


CUSTOMER_CREATED = EventType("customer.created", "A customer record was created.")
CUSTOMER_UPDATED = EventType(
    "customer.updated", "A customer record changed; `changed_fields` names what changed."
)
CUSTOMER_DELETED = EventType(
    "customer.deleted", "A customer record was deleted (`hard` tells whether permanently)."
)
CUSTOMER_RESTORED = EventType("customer.restored", "A soft-deleted customer record was restored.")
CUSTOMER_MERGED = EventType(
    "customer.merged", "A secondary customer record was merged into a primary one."
)
CUSTOMER_MERGE_UNDONE = EventType(
    "customer.merge_undone", "A merge was reversed: both records are as they were before it."
)

FEEDBACK_CREATED = EventType(
    "feedback.created",
    "Feedback was received; `duplicate_of_id` links a re-submission or near-copy to its original.",
)
FEEDBACK_UPDATED = EventType(
    "feedback.updated", "Feedback was triaged or retagged; `changed_fields` names what changed."
)
BULK_COMPLETED = EventType(
    "bulk.completed",
    "A bulk import or export finished (completed, failed or cancelled) with its counts.",
)
CONSENT_GRANTED = EventType(
    "consent.granted", "A customer granted consent for a purpose (with legal basis and policy)."
)
CONSENT_REVOKED = EventType("consent.revoked", "A customer's consent for a purpose was revoked.")

# Data subject requests: one event per transition of the status machine. Payloads carry the
# request and the customer id, never personal data.
PRIVACY_REQUEST_RECEIVED = EventType(
    "privacy.request_received", "A data subject request (access, erasure, rectification) arrived."
)
PRIVACY_REQUEST_VERIFIED = EventType(
    "privacy.request_verified", "The requester's identity was verified."
)
PRIVACY_REQUEST_PROCESSING = EventType(
    "privacy.request_processing", "Work on a data subject request started."
)
PRIVACY_REQUEST_COMPLETED = EventType(
    "privacy.request_completed", "An access or rectification request was completed."
)
PRIVACY_REQUEST_CANCELLED = EventType(
    "privacy.request_cancelled", "A data subject request was cancelled (an erasure, before it ran)."
)
PRIVACY_REQUEST_FAILED = EventType(
    "privacy.request_failed", "A data subject request could not be completed."
)
PRIVACY_ERASURE_SCHEDULED = EventType(
    "privacy.erasure_scheduled", "An erasure was scheduled; it runs at `scheduled_for`."
)
PRIVACY_ERASURE_COMPLETED = EventType(
    "privacy.erasure_completed",
    "A person was erased or anonymised; `tables` says what was done where (no personal data).",
)

CATALOGUE: dict[str, EventType] = {
    event.name: event
    for event in (
        CUSTOMER_CREATED,
        CUSTOMER_UPDATED,
        CUSTOMER_DELETED,
        CUSTOMER_RESTORED,
        CUSTOMER_MERGED,
        CUSTOMER_MERGE_UNDONE,
        FEEDBACK_CREATED,
        FEEDBACK_UPDATED,
        BULK_COMPLETED,
        CONSENT_GRANTED,
        CONSENT_REVOKED,
        PRIVACY_REQUEST_RECEIVED,
        PRIVACY_REQUEST_VERIFIED,
        PRIVACY_REQUEST_PROCESSING,
        PRIVACY_REQUEST_COMPLETED,
        PRIVACY_REQUEST_CANCELLED,
        PRIVACY_REQUEST_FAILED,
        PRIVACY_ERASURE_SCHEDULED,
        PRIVACY_ERASURE_COMPLETED,
    )
}
