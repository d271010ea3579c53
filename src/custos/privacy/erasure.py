"""Carrying out an erasure or anonymisation: find the person, walk every registered holder,
keep the tombstone.

Scheduled erasures run as a job once their grace period is over. The request row is the
job's durable state: `scheduled` -> `processing` is committed first, then the whole erasure
and the move to `completed` happen in one transaction, so a crash at any point leaves either
nothing done or everything done, and the next run (every minute, and at start-up) resumes
what is still `scheduled` or `processing`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from custos import events
from custos.kit.time import utcnow
from custos.models import Customer, PrivacyRequest, User
from custos.privacy.holders import Context, Mode, Subject, registered
from custos.privacy.keys import keys_for
from custos.privacy.operators import pseudonymize
from custos.privacy.repository import privacy_request
from custos.privacy.schemas import RequestStatus
from custos.privacy.transitions import add_history, record_transition
from custos.runtime import Runtime

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 5


async def subject_of(session: AsyncSession, tenant_id: str, customer_id: str) -> Subject:
    """The person behind a record: it, the records merged into it, their linked users, and
    the identifiers to look for elsewhere. A record already gone leaves just its id."""
    ids = [customer_id]
    frontier = [customer_id]
    while frontier:
        merged = list(
            await session.scalars(
                sa.select(Customer.id).where(
                    Customer.tenant_id == tenant_id, Customer.merged_into_id.in_(frontier)
                )
            )
        )
        frontier = [m for m in merged if m not in ids]
        ids += frontier
    records = list(
        await session.scalars(
            sa.select(Customer).where(Customer.tenant_id == tenant_id, Customer.id.in_(ids))
        )
    )
    users = list(
        await session.scalars(
            sa.select(User).where(User.tenant_id == tenant_id, User.customer_id.in_(ids))
        )
    )
    # Each identifier with the PII type the detector gives it in free text.
    typed: set[tuple[str, str]] = set()
    for record in records:
        if record.email:
            typed.add((record.email, "email"))
        for phone in (record.phone, record.phone_e164):
            if phone:
                typed.add((phone, "phone"))
        if record.phone_e164:
            typed.add((record.phone_e164.lstrip("+"), "phone"))
        # One-word names ("Ada") would scrub every mention of the word, not of the person.
        if record.full_name and " " in record.full_name.strip():
            typed.add((record.full_name.strip(), "person"))
    for user in users:
        typed.add((user.email, "email"))
        if user.full_name and " " in user.full_name.strip():
            typed.add((user.full_name.strip(), "person"))
    identifiers = {value for value, _ in typed}
    # Free text stored pseudonymised holds tokens, not values: the same tokens are made
    # here (deterministic per tenant) so that they are found and scrubbed too.
    keys = keys_for(session, tenant_id)
    identifiers |= {pseudonymize(value, kind, keys) for value, kind in typed}
    return Subject(
        tenant_id=tenant_id,
        customer_id=customer_id,
        customer_ids=tuple(ids),
        user_ids=tuple(u.id for u in users),
        identifiers=tuple(sorted(identifiers)),
    )


async def erase_person(
    session: AsyncSession, runtime: Runtime, tenant_id: str, customer_id: str, mode: Mode
) -> dict[str, Any]:
    """Run every holder; returns the tombstone (no personal data)."""
    subject = await subject_of(session, tenant_id, customer_id)
    ctx = Context(session=session, runtime=runtime, subject=subject, mode=mode)
    reports = []
    for holder in registered():
        reports.extend(await holder.erase(ctx))
    return {
        "method": mode.value,
        "customer_id": customer_id,
        "records": len(subject.customer_ids),
        "tables": [r.as_dict() for r in reports],
        "erased_at": utcnow().isoformat(),
    }


async def due(runtime: Runtime) -> list[tuple[str, str]]:
    """(tenant, request) of every erasure whose time has come, or that a worker left."""
    now = utcnow()
    async with runtime.db.transaction(system=True, write=False) as session:
        rows = await session.execute(
            sa.select(PrivacyRequest.tenant_id, PrivacyRequest.id)
            .where(
                PrivacyRequest.type == "erasure",
                sa.or_(
                    sa.and_(
                        PrivacyRequest.status == RequestStatus.scheduled.value,
                        PrivacyRequest.scheduled_for <= now,
                    ),
                    PrivacyRequest.status == RequestStatus.processing.value,
                ),
            )
            .order_by(PrivacyRequest.scheduled_for)
            .limit(500)
        )
        return [(row[0], row[1]) for row in rows]


async def run_due(runtime: Runtime) -> int:
    done = 0
    for tenant_id, request_id in await due(runtime):
        done += await run(runtime, tenant_id, request_id)
    return done


async def _claim(runtime: Runtime, tenant_id: str, request_id: str) -> bool:
    """scheduled -> processing, committed on its own; True when there is work to do."""
    async with runtime.db.transaction(tenant_id=tenant_id) as session:
        request = await privacy_request(session, tenant_id, request_id, lock=True)
        if request is None:
            return False
        if request.status == RequestStatus.processing.value:
            return True
        if request.status != RequestStatus.scheduled.value or (
            request.scheduled_for is not None and request.scheduled_for > utcnow()
        ):
            return False
        add_history(request, RequestStatus.processing, "system", None)
        await session.flush()
        record_transition(session, None, request, events.PRIVACY_REQUEST_PROCESSING)
    return True


async def run(runtime: Runtime, tenant_id: str, request_id: str) -> int:
    """Carry out one erasure request; 1 when it completed now."""
    if not await _claim(runtime, tenant_id, request_id):
        return 0
    try:
        async with runtime.db.transaction(tenant_id=tenant_id) as session:
            request = await privacy_request(session, tenant_id, request_id, lock=True)
            if request is None or request.status != RequestStatus.processing.value:
                return 0  # another worker finished it meanwhile
            request.attempts += 1
            request.result = await erase_person(
                session, runtime, tenant_id, request.customer_id, Mode(request.method or "erase")
            )
            request.completed_at = utcnow()
            request.last_error = None
            add_history(request, RequestStatus.completed, "system", None)
            await session.flush()
            record_transition(session, None, request, events.PRIVACY_ERASURE_COMPLETED)
    except Exception as exc:
        # Only the error's type: a message could quote the data being erased.
        log.exception("erasure_failed", request_id=request_id, error=type(exc).__name__)
        await _record_failure(runtime, tenant_id, request_id, type(exc).__name__)
        return 0
    log.info("erasure_completed", request_id=request_id)
    return 1


async def _record_failure(runtime: Runtime, tenant_id: str, request_id: str, error: str) -> None:
    async with runtime.db.transaction(tenant_id=tenant_id) as session:
        request = await privacy_request(session, tenant_id, request_id, lock=True)
        if request is None or request.status != RequestStatus.processing.value:
            return
        request.attempts += 1
        request.last_error = error[:300]
        if request.attempts >= MAX_ATTEMPTS:
            add_history(request, RequestStatus.failed, "system", None)
            await session.flush()
            record_transition(session, None, request, events.PRIVACY_REQUEST_FAILED)
