"""A data subject request moving from one status to the next: its history, one audit row,
one event."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from custos import events
from custos.audit import service as audit
from custos.auth.principal import Principal
from custos.event import service as event_log
from custos.kit.time import utcnow
from custos.models import PrivacyRequest
from custos.privacy.schemas import (
    ErasureCompletedEvent,
    PrivacyRequestEvent,
    RequestStatus,
    RequestType,
)


def add_history(
    request: PrivacyRequest, status: RequestStatus, actor_type: str, actor_id: str | None
) -> None:
    request.history = [
        *request.history,
        {"status": status.value, "at": utcnow().isoformat(), "actor_type": actor_type,
         "actor_id": actor_id},
    ]  # fmt: skip
    request.status = status.value


def event_payload(request: PrivacyRequest) -> dict[str, Any]:
    return PrivacyRequestEvent(
        request_id=request.id,
        customer_id=request.customer_id,
        type=RequestType(request.type),
        status=RequestStatus(request.status),
        method=request.method,
        scheduled_for=request.scheduled_for,
    ).model_dump(mode="json")


def completed_payload(request: PrivacyRequest) -> dict[str, Any]:
    result = request.result or {}
    return ErasureCompletedEvent(
        request_id=request.id,
        customer_id=request.customer_id,
        method=result.get("method", request.method or "erase"),
        records=result.get("records", 0),
        tables=result.get("tables", []),
        erased_at=result.get("erased_at") or utcnow(),
    ).model_dump(mode="json")


EVENT_FOR_STATUS = {
    RequestStatus.received: events.PRIVACY_REQUEST_RECEIVED,
    RequestStatus.verified: events.PRIVACY_REQUEST_VERIFIED,
    RequestStatus.scheduled: events.PRIVACY_ERASURE_SCHEDULED,
    RequestStatus.processing: events.PRIVACY_REQUEST_PROCESSING,
    RequestStatus.completed: events.PRIVACY_REQUEST_COMPLETED,
    RequestStatus.cancelled: events.PRIVACY_REQUEST_CANCELLED,
    RequestStatus.failed: events.PRIVACY_REQUEST_FAILED,
}


def record_transition(
    session: AsyncSession,
    actor: Principal | None,
    request: PrivacyRequest,
    event_type: events.EventType | None = None,
    *,
    action: str | None = None,
) -> None:
    """One audit row and one event for the request's latest transition (or its creation)."""
    previous = request.history[-2]["status"] if len(request.history) > 1 else None
    event_type = event_type or EVENT_FOR_STATUS[RequestStatus(request.status)]
    if request.type == "erasure" and request.status == RequestStatus.completed.value:
        event_type = events.PRIVACY_ERASURE_COMPLETED
    changes: dict[str, Any] = {"status": {"from": previous, "to": request.status}}
    if previous is None:
        changes["customer_id"] = {"from": None, "to": request.customer_id}
    audit.record(
        session,
        actor,
        action or f"privacy.request_{request.status}",
        "privacy_request",
        request.id,
        tenant_id=request.tenant_id,
        changes=changes,
    )
    payload = (
        completed_payload(request)
        if event_type is events.PRIVACY_ERASURE_COMPLETED
        else event_payload(request)
    )
    event_log.emit(
        session,
        actor,
        event_type,
        payload,
        subject_type="privacy_request",
        subject_id=request.id,
        tenant_id=request.tenant_id,
    )
