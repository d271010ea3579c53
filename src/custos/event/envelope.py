"""The one shape of an event outside Custos: the API's `Event`, the body of every webhook
message and the content of every object written to the bucket."""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from custos.kit.time import as_utc


class EventRow(Protocol):
    id: str
    type: str
    seq: int
    tenant_id: str
    occurred_at: Any
    schema_version: int
    test: bool
    actor_type: str
    actor_id: str | None
    subject_type: str | None
    subject_id: str | None
    request_id: str | None
    payload: dict[str, Any]


def envelope(row: EventRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.type,
        "seq": row.seq,
        "tenant_id": row.tenant_id,
        "timestamp": as_utc(row.occurred_at),
        "schema_version": row.schema_version,
        "test": bool(row.test),
        "actor": {"type": row.actor_type, "id": row.actor_id},
        "subject": ({"type": row.subject_type, "id": row.subject_id} if row.subject_type else None),
        "request_id": row.request_id,
        "data": row.payload,
    }


def message_bytes(row: EventRow) -> bytes:
    """The exact bytes that are signed and sent, or stored."""
    return orjson.dumps(envelope(row), option=orjson.OPT_UTC_Z)
