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
    )
}
