from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import Query, Response

from custos.auth.dependencies import (
    PrivacyErase,
    PrivacyRead,
    PrivacyReidentify,
    PrivacyWrite,
    RuntimeDep,
    SelfRead,
    SelfWrite,
    TenantSession,
)
from custos.consent import service as consent_service
from custos.consent.schemas import PURPOSE_PATTERN, ConsentRecord, ConsentStatus, OwnConsentGrant
from custos.exceptions import NotFound
from custos.kit.idempotency import IdempotencyKeyHeader, created_once
from custos.kit.pagination import Cursor, Limit, Page, keyset_page
from custos.kit.routing import CustosRouter
from custos.models import PrivacyRequest as PrivacyRequestModel
from custos.privacy import export as export_service
from custos.privacy import requests, scanning
from custos.privacy.pii import PiiType
from custos.privacy.schemas import (
    MAX_QUERY_TEXT,
    Export,
    PiiScanBatchResult,
    PiiScanRequest,
    PiiScanResult,
    PrivacyRequest,
    PrivacyRequestCreate,
    RedactRequest,
    RedactResult,
    ReidentifyRequest,
    ReidentifyResult,
    RequestStatus,
    RequestType,
    ScanOptions,
    Transition,
)

log = structlog.get_logger(__name__)

router = CustosRouter(prefix="/privacy", tags=["privacy"])

ImmediateFlag = Annotated[
    bool, Query(description="Skip the grace period and erase now (admins only)")
]


@router.post(
    "/pii-scan",
    response_model=PiiScanResult | PiiScanBatchResult,
    summary="Find personal data in a text, or in up to 1,000 texts",
)
async def pii_scan(
    body: PiiScanRequest, auth: PrivacyRead, session: TenantSession
) -> PiiScanResult | PiiScanBatchResult:
    texts = [body.text] if body.text is not None else list(body.texts or [])
    found = await scanning.scan_texts(session, auth, texts, body)
    results = [PiiScanResult(entities=scanning.as_api(entities)) for entities in found]
    return results[0] if body.text is not None else PiiScanBatchResult(results=results)


@router.get(
    "/pii-scan",
    response_model=PiiScanResult,
    summary="Find personal data in a short text (for seed-era clients; prefer POST)",
    description="The query string is never logged. Texts up to 4,000 characters.",
)
async def pii_scan_query(
    auth: PrivacyRead,
    session: TenantSession,
    text: Annotated[str, Query(max_length=MAX_QUERY_TEXT)],
    min_score: Annotated[float | None, Query(ge=0, le=1)] = None,
    types: Annotated[list[PiiType] | None, Query()] = None,
) -> PiiScanResult:
    options = ScanOptions(min_score=min_score, types=types)
    [entities] = await scanning.scan_texts(session, auth, [text], options)
    return PiiScanResult(entities=scanning.as_api(entities))


@router.post(
    "/redact",
    response_model=RedactResult,
    summary="Mask, redact, replace, hash, pseudonymise or encrypt the personal data in a text",
)
async def redact(body: RedactRequest, auth: PrivacyRead, session: TenantSession) -> RedactResult:
    return await scanning.redact(session, auth, body)


@router.post(
    "/reidentify",
    response_model=ReidentifyResult,
    summary="Turn this tenant's pseudonyms (pse_…) and encrypted values (enc_…) back",
)
async def reidentify(
    body: ReidentifyRequest, auth: PrivacyReidentify, session: TenantSession
) -> ReidentifyResult:
    return await scanning.reidentify(session, auth, body.text)


@router.post(
    "/requests",
    response_model=PrivacyRequest,
    status_code=201,
    summary="Record a data subject request (access, erasure, rectification)",
)
async def create_request(
    body: PrivacyRequestCreate,
    auth: PrivacyWrite,
    session: TenantSession,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    async def create() -> tuple[dict[str, Any], dict[str, str]]:
        created = await requests.create(session, auth, body)
        content = PrivacyRequest.model_validate(created).model_dump(mode="json")
        return content, {"Location": f"/api/v1/privacy/requests/{created.id}"}

    return await created_once(session, auth, idempotency_key, "/privacy/requests", body, create)


@router.get("/requests", response_model=Page[PrivacyRequest], summary="Data subject requests")
async def list_requests(
    auth: PrivacyRead,
    session: TenantSession,
    limit: Limit = 50,
    cursor: Cursor = None,
    status: RequestStatus | None = None,
    type: RequestType | None = None,
    customer_id: Annotated[str | None, Query(max_length=40)] = None,
) -> Page[PrivacyRequest]:
    stmt = requests.list_statement(
        auth.tenant_id, status=status, type=type, customer_id=customer_id
    )
    items, next_cursor = await keyset_page(
        session, stmt, PrivacyRequestModel.id, limit=limit, cursor=cursor
    )
    return Page[PrivacyRequest](
        items=[PrivacyRequest.model_validate(r) for r in items], next_cursor=next_cursor
    )


@router.get("/requests/{request_id}", response_model=PrivacyRequest, summary="A request")
async def get_request(
    request_id: str, auth: PrivacyRead, session: TenantSession
) -> PrivacyRequestModel:
    return await requests.get(session, auth.tenant_id, request_id)


@router.post(
    "/requests/{request_id}/transitions",
    response_model=PrivacyRequest,
    summary="Move a request on: verified, scheduled (erasures), processing, completed, "
    "cancelled, failed",
)
async def transition(
    request_id: str,
    body: Transition,
    auth: PrivacyWrite,
    runtime: RuntimeDep,
    session: TenantSession,
) -> PrivacyRequestModel:
    return await requests.transition(session, auth, runtime.settings, request_id, body)


@router.post(
    "/erase/{customer_id}",
    response_model=PrivacyRequest,
    status_code=202,
    summary="Erase a person from every table, after the grace period (cancellable until then)",
)
async def erase(
    customer_id: str,
    auth: PrivacyErase,
    runtime: RuntimeDep,
    session: TenantSession,
    immediate: ImmediateFlag = False,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    async def schedule() -> tuple[dict[str, Any], dict[str, str]]:
        scheduled = await requests.schedule_erasure(
            session, auth, runtime.settings, customer_id, immediate=immediate
        )
        content = PrivacyRequest.model_validate(scheduled).model_dump(mode="json")
        return content, {"Location": f"/api/v1/privacy/requests/{scheduled.id}"}

    request = {"customer_id": customer_id, "immediate": immediate}
    return await created_once(
        session, auth, idempotency_key, "/privacy/erase", request, schedule, status=202
    )


@router.post(
    "/anonymize/{customer_id}",
    response_model=PrivacyRequest,
    summary="Keep the record for statistics, its personal data irreversibly replaced",
)
async def anonymize(
    customer_id: str, auth: PrivacyErase, runtime: RuntimeDep, session: TenantSession
) -> PrivacyRequestModel:
    return await requests.anonymize(session, runtime, auth, customer_id)


@router.get(
    "/export/{customer_id}",
    response_model=Export,
    summary="Everything Custos holds on a person, machine-readable",
)
async def export(
    customer_id: str, auth: PrivacyWrite, runtime: RuntimeDep, session: TenantSession
) -> dict[str, Any]:
    return await export_service.export(session, runtime, auth.tenant_id, customer_id)


# -- self-service: a customer-role user and their own record ---------------------------------

me_router = CustosRouter(prefix="/privacy/me", tags=["privacy: self-service"])


def _own(auth: Any) -> str:
    if auth.customer_id is None:
        raise NotFound("No customer record is linked to this account")
    customer_id: str = auth.customer_id
    return customer_id


@me_router.get("/export", response_model=Export, summary="Everything Custos holds on me")
async def export_mine(
    auth: SelfRead, runtime: RuntimeDep, session: TenantSession
) -> dict[str, Any]:
    return await export_service.export(session, runtime, auth.tenant_id, _own(auth))


@me_router.get("/consents", response_model=ConsentStatus, summary="My consents, per purpose")
async def my_consents(auth: SelfRead, session: TenantSession) -> ConsentStatus:
    customer_id = _own(auth)
    states = await consent_service.status(session, auth, customer_id)
    return ConsentStatus(customer_id=customer_id, consents=states)


@me_router.post(
    "/consents", response_model=ConsentRecord, status_code=201, summary="Give my consent"
)
async def grant_mine(body: OwnConsentGrant, auth: SelfWrite, session: TenantSession) -> Any:
    return await consent_service.record(
        session,
        auth,
        _own(auth),
        body.consent_type,
        granted=True,
        source="self-service",
        policy_version=body.policy_version,
    )


@me_router.delete("/consents", response_model=ConsentRecord, summary="Withdraw my consent")
async def revoke_mine(
    consent_type: Annotated[str, Query(pattern=PURPOSE_PATTERN)],
    auth: SelfWrite,
    session: TenantSession,
) -> Any:
    return await consent_service.record(
        session, auth, _own(auth), consent_type, granted=False, source="self-service"
    )


@me_router.get("/requests", response_model=list[PrivacyRequest], summary="My requests")
async def my_requests(auth: SelfRead, session: TenantSession) -> list[PrivacyRequest]:
    stmt = requests.list_statement(auth.tenant_id, customer_id=_own(auth))
    rows = await session.scalars(stmt.order_by(PrivacyRequestModel.id.desc()).limit(100))
    return [PrivacyRequest.model_validate(r) for r in rows]


@me_router.post(
    "/erasure",
    response_model=PrivacyRequest,
    status_code=202,
    summary="Ask to be erased: scheduled after the grace period, cancellable until then",
)
async def erase_me(
    auth: SelfWrite, runtime: RuntimeDep, session: TenantSession
) -> PrivacyRequestModel:
    return await requests.schedule_erasure(
        session, auth, runtime.settings, _own(auth), immediate=False
    )


@me_router.post(
    "/requests/{request_id}/cancel",
    response_model=PrivacyRequest,
    summary="Cancel my request while it has not started",
)
async def cancel_mine(
    request_id: str, auth: SelfWrite, session: TenantSession
) -> PrivacyRequestModel:
    _own(auth)
    return await requests.cancel_own(session, auth, request_id)
