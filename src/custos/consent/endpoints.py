from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Response

from custos.auth.dependencies import ConsentsRead, ConsentsWrite, TenantSession
from custos.consent import service
from custos.consent.schemas import PURPOSE_PATTERN, ConsentGrant, ConsentRecord, ConsentStatus
from custos.kit.idempotency import IdempotencyKeyHeader, created_once
from custos.kit.pagination import Cursor, Limit, Page, keyset_page
from custos.kit.routing import CustosRouter
from custos.models import Consent
from custos.privacy import requests

router = CustosRouter(prefix="/privacy/consent", tags=["consent"])

CustomerId = Annotated[str, Query(max_length=40, description="The customer's id")]
ConsentType = Annotated[str, Query(pattern=PURPOSE_PATTERN, description="The purpose")]


@router.post("", response_model=ConsentRecord, status_code=201, summary="Record a consent")
async def grant(
    body: ConsentGrant,
    auth: ConsentsWrite,
    session: TenantSession,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    async def create() -> tuple[dict[str, Any], dict[str, str]]:
        record = await service.record(
            session,
            auth,
            body.customer_id,
            body.consent_type,
            granted=True,
            legal_basis=body.legal_basis,
            source=body.source,
            policy_version=body.policy_version,
        )
        return ConsentRecord.model_validate(record).model_dump(mode="json"), {}

    return await created_once(session, auth, idempotency_key, "/privacy/consent", body, create)


@router.delete("", response_model=ConsentRecord, summary="Revoke a consent")
async def revoke(
    customer_id: CustomerId,
    consent_type: ConsentType,
    auth: ConsentsWrite,
    session: TenantSession,
    source: Annotated[str | None, Query(max_length=100)] = None,
) -> Consent:
    return await service.record(
        session, auth, customer_id, consent_type, granted=False, source=source
    )


@router.get("", response_model=ConsentStatus, summary="A customer's consent, per purpose")
async def status(
    customer_id: CustomerId, auth: ConsentsRead, session: TenantSession
) -> ConsentStatus:
    states = await service.status(session, auth, customer_id)
    return ConsentStatus(customer_id=customer_id, consents=states)


@router.get(
    "/history",
    response_model=Page[ConsentRecord],
    summary="Every grant and revocation, newest first",
)
async def history(
    customer_id: CustomerId,
    auth: ConsentsRead,
    session: TenantSession,
    consent_type: Annotated[str | None, Query(pattern=PURPOSE_PATTERN)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ConsentRecord]:
    await requests.subject_record(session, auth.tenant_id, customer_id)
    stmt = service.history_statement(auth.tenant_id, customer_id, consent_type)
    items, next_cursor = await keyset_page(session, stmt, Consent.id, limit=limit, cursor=cursor)
    return Page[ConsentRecord](
        items=[ConsentRecord.model_validate(c) for c in items], next_cursor=next_cursor
    )
