"""Data subject requests and their status machine:

    received -> verified -> scheduled -> processing -> completed   (erasure: the job)
    received -> verified -> processing -> completed                (access, rectification)
    any open status -> cancelled (an erasure only until it starts); processing -> failed;
    failed -> scheduled (an erasure, retried)

Every transition is one audit row and one event.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from custos.auth.principal import Principal, PrincipalKind
from custos.auth.scopes import ROLE_SCOPES, Role
from custos.config import Settings
from custos.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from custos.kit.ids import new_id
from custos.kit.time import utcnow
from custos.models import Customer, PrivacyRequest
from custos.privacy import settings as privacy_settings
from custos.privacy.erasure import erase_person
from custos.privacy.holders import Mode
from custos.privacy.repository import privacy_request
from custos.privacy.schemas import PrivacyRequestCreate, RequestStatus, RequestType, Transition
from custos.privacy.transitions import add_history, record_transition
from custos.runtime import Runtime
from custos.worker.defer import defer

S = RequestStatus

# Who may move a request where by hand; the erasure job moves scheduled -> processing ->
# completed itself.
_MANUAL: dict[RequestType, dict[RequestStatus, set[RequestStatus]]] = {
    RequestType.erasure: {
        S.received: {S.verified, S.cancelled},
        S.verified: {S.scheduled, S.cancelled},
        S.scheduled: {S.cancelled},
        S.failed: {S.scheduled},
    },
    RequestType.access: {
        S.received: {S.verified, S.cancelled},
        S.verified: {S.processing, S.completed, S.cancelled},
        S.processing: {S.completed, S.failed, S.cancelled},
    },
}
_MANUAL[RequestType.rectification] = _MANUAL[RequestType.access]


def is_admin(actor: Principal) -> bool:
    return actor.role == Role.admin.value or (
        actor.kind is PrincipalKind.api_key and ROLE_SCOPES[Role.admin] <= actor.scopes
    )


async def subject_record(session: AsyncSession, tenant_id: str, customer_id: str) -> Customer:
    customer = await session.scalar(
        sa.select(Customer).where(
            Customer.tenant_id == tenant_id,
            Customer.id == customer_id,
            Customer.merged_into_id.is_(None),
        )
    )
    if customer is None:
        raise NotFound("No such customer")
    return customer


async def get(
    session: AsyncSession, tenant_id: str, request_id: str, *, lock: bool = False
) -> PrivacyRequest:
    request = await privacy_request(session, tenant_id, request_id, lock=lock)
    if request is None:
        raise NotFound("No such privacy request")
    return request


def _new(
    actor: Principal, customer_id: str, kind: RequestType, note: str | None, method: str | None
) -> PrivacyRequest:
    request = PrivacyRequest(
        id=new_id("dsr"),
        tenant_id=actor.tenant_id,
        customer_id=customer_id,
        type=kind.value,
        status=S.received.value,
        method=method,
        note=note,
        requested_by_type=actor.kind.value,
        requested_by_id=actor.id,
        attempts=0,
        history=[],
    )
    add_history(request, S.received, actor.kind.value, actor.id)
    return request


async def create(
    session: AsyncSession, actor: Principal, body: PrivacyRequestCreate
) -> PrivacyRequest:
    await subject_record(session, actor.tenant_id, body.customer_id)
    request = _new(
        actor,
        body.customer_id,
        body.type,
        body.note,
        "erase" if body.type is RequestType.erasure else None,
    )
    session.add(request)
    await session.flush()
    record_transition(session, actor, request)
    return request


async def grace(session: AsyncSession, actor: Principal, settings: Settings) -> timedelta:
    tenant = privacy_settings.parse(await privacy_settings.tenant_settings(session, actor))
    days = tenant.erasure_grace_days
    return timedelta(days=settings.privacy_erasure_grace_days if days is None else days)


async def _no_open_erasure(
    session: AsyncSession, tenant_id: str, customer_id: str, but: str | None = None
) -> None:
    open_one = await session.scalar(
        sa.select(PrivacyRequest.id).where(
            PrivacyRequest.tenant_id == tenant_id,
            PrivacyRequest.customer_id == customer_id,
            PrivacyRequest.type == RequestType.erasure.value,
            PrivacyRequest.status.in_([S.scheduled.value, S.processing.value]),
            PrivacyRequest.id != (but or ""),
        )
    )
    if open_one is not None:
        raise Conflict(f"An erasure of this customer is already scheduled ({open_one})")


async def schedule_erasure(
    session: AsyncSession,
    actor: Principal,
    settings: Settings,
    customer_id: str,
    *,
    immediate: bool,
    note: str | None = None,
) -> PrivacyRequest:
    """Received, verified (the caller is trusted, or is the person) and scheduled at once."""
    if immediate and not is_admin(actor):
        raise Forbidden("Only admins may erase without the grace period")
    await subject_record(session, actor.tenant_id, customer_id)
    await _no_open_erasure(session, actor.tenant_id, customer_id)
    request = _new(actor, customer_id, RequestType.erasure, note, Mode.erase.value)
    add_history(request, S.verified, actor.kind.value, actor.id)
    add_history(request, S.scheduled, actor.kind.value, actor.id)
    request.scheduled_for = utcnow() + (
        timedelta(0) if immediate else await grace(session, actor, settings)
    )
    session.add(request)
    await session.flush()
    record_transition(session, actor, request, action="privacy.erasure_scheduled")
    if immediate:
        _defer_erasure(session, request)
    return request


def _defer_erasure(session: AsyncSession, request: PrivacyRequest) -> None:
    """The erasure job, queued in the request's own transaction (the job that runs every
    minute takes any erasure that is due, too)."""
    defer(session, "privacy.erase", tenant_id=request.tenant_id, request_id=request.id)


async def transition(
    session: AsyncSession, actor: Principal, settings: Settings, request_id: str, body: Transition
) -> PrivacyRequest:
    request = await get(session, actor.tenant_id, request_id, lock=True)
    kind, current, wanted = RequestType(request.type), S(request.status), body.status
    if wanted not in _MANUAL[kind].get(current, set()):
        raise Conflict(f"A {kind.value} request cannot move from {current.value} to {wanted.value}")
    if kind is RequestType.erasure and wanted is S.scheduled:
        if "privacy:erase" not in actor.scopes:
            raise Forbidden("Scheduling an erasure needs the scope privacy:erase")
        if body.immediate and not is_admin(actor):
            raise Forbidden("Only admins may erase without the grace period")
        await _no_open_erasure(session, actor.tenant_id, request.customer_id, but=request.id)
        delay = timedelta(0) if body.immediate else await grace(session, actor, settings)
        request.scheduled_for = utcnow() + delay
        request.attempts = 0
        if body.immediate:
            _defer_erasure(session, request)
    elif body.immediate:
        raise InvalidInput("`immediate` applies only when scheduling an erasure")
    if wanted is S.completed:
        request.completed_at = utcnow()
    add_history(request, wanted, actor.kind.value, actor.id)
    await session.flush()
    record_transition(session, actor, request)
    return request


async def cancel_own(session: AsyncSession, actor: Principal, request_id: str) -> PrivacyRequest:
    request = await get(session, actor.tenant_id, request_id, lock=True)
    if request.customer_id != actor.customer_id:
        raise NotFound("No such privacy request")
    if S(request.status) not in (S.received, S.verified, S.scheduled):
        raise Conflict(f"This request is {request.status} and can no longer be cancelled")
    add_history(request, S.cancelled, actor.kind.value, actor.id)
    await session.flush()
    record_transition(session, actor, request)
    return request


async def anonymize(
    session: AsyncSession,
    runtime: Runtime,
    actor: Principal,
    customer_id: str,
    note: str | None = None,
) -> PrivacyRequest:
    """Keep the record for statistics, without its personal data: done at once."""
    customer = await subject_record(session, actor.tenant_id, customer_id)
    if customer.anonymized_at is not None:
        raise Conflict("This customer is anonymised already")
    await _no_open_erasure(session, actor.tenant_id, customer_id)
    request = _new(actor, customer_id, RequestType.erasure, note, Mode.anonymize.value)
    session.add(request)
    await session.flush()
    request.result = await erase_person(
        session, runtime, actor.tenant_id, customer_id, Mode.anonymize
    )
    request.completed_at = utcnow()
    for status in (S.verified, S.processing, S.completed):
        add_history(request, status, actor.kind.value, actor.id)
    await session.flush()
    record_transition(session, actor, request, action="privacy.anonymized")
    return request


def list_statement(
    tenant_id: str,
    *,
    status: RequestStatus | None = None,
    type: RequestType | None = None,
    customer_id: str | None = None,
) -> sa.Select[tuple[PrivacyRequest]]:
    stmt = sa.select(PrivacyRequest).where(PrivacyRequest.tenant_id == tenant_id)
    if status is not None:
        stmt = stmt.where(PrivacyRequest.status == status.value)
    if type is not None:
        stmt = stmt.where(PrivacyRequest.type == type.value)
    if customer_id is not None:
        stmt = stmt.where(PrivacyRequest.customer_id == customer_id)
    return stmt
