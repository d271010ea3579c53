from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import Header, Query, Request, Response

from custos.auth.dependencies import (
    CustomersRead,
    CustomersWrite,
    InternalWrite,
    SelfRead,
    SelfWrite,
    TenantSession,
    runtime_of,
)
from custos.customer import (
    analytics,
    batch,
    duplicates,
    lists,
    merge,
    notes,
    reads,
    service,
    statistics,
    writes,
)
from custos.customer.schemas import (
    BatchResult,
    Customer,
    CustomerBatch,
    CustomerCreate,
    CustomerListQuery,
    CustomerPatch,
    CustomerSelfPatch,
    DuplicatePair,
    Merge,
    MergeRequest,
    MergeResult,
    Note,
    NoteCreate,
    Statistics,
    StatisticsIncrement,
    StatisticsResult,
    TimelineEntry,
    UndoResult,
)
from custos.exceptions import NotFound
from custos.kit.idempotency import IdempotencyKeyHeader
from custos.kit.pagination import Limit, Page
from custos.kit.routing import CustosRouter
from custos.models import Customer as CustomerModel
from custos.models import CustomerNote

router = CustosRouter(prefix="/customers", tags=["customers"])
# For service-role callers: the upstream auth service and the order and complaint services.
internal_router = CustosRouter(prefix="/internal/customers", tags=["internal"])

IfMatch = Annotated[
    str | None,
    Header(max_length=200, description="The ETag you read; a stale one gets 412"),
]


def _with_etag(response: Response, customer: CustomerModel) -> CustomerModel:
    response.headers["ETag"] = service.etag(customer)
    return customer


@router.post("", response_model=Customer, status_code=201, summary="Create a customer")
async def create_customer(
    body: CustomerCreate,
    auth: CustomersWrite,
    request: Request,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    return await writes.create(runtime_of(request).db, auth, body, idempotency_key)


@router.get("", response_model=Page[Customer], summary="List customers, newest first")
async def list_customers(
    request: Request,
    auth: CustomersRead,
    query: Annotated[CustomerListQuery, Query()],
) -> Response:
    runtime = runtime_of(request)

    async def page() -> bytes:
        return await lists.page(runtime.db, auth, query)

    # Read cache (cache/service.py): the page for this exact query, until a customer changes.
    body = await runtime.read_cache.customer_list(auth.tenant_id, _canonical(request), page)
    return Response(body, media_type="application/json")


def _canonical(request: Request) -> str:
    return urlencode(sorted(request.query_params.multi_items()))


@router.post(
    "/batch",
    response_model=BatchResult,
    summary="Create or upsert up to 1,000 customers; errors reported by item index",
)
async def batch_customers(
    body: CustomerBatch,
    auth: CustomersWrite,
    session: TenantSession,
    atomic: Annotated[
        bool, Query(description="All or nothing: any invalid item writes nothing (422)")
    ] = False,
) -> BatchResult:
    return await batch.run(session, auth, body, atomic=atomic)


@router.get("/analytics", summary="Counts, growth, top customers and data quality")
async def customer_analytics(
    auth: CustomersRead,
    session: TenantSession,
    inactive_days: Annotated[int, Query(ge=1, le=3650)] = 90,
    weeks: Annotated[int, Query(ge=1, le=104)] = 12,
    months: Annotated[int, Query(ge=1, le=36)] = 12,
) -> dict[str, Any]:
    return await analytics.compute(
        session, auth.tenant_id, inactive_days=inactive_days, weeks=weeks, months=months
    )


@router.get(
    "/duplicates",
    response_model=list[DuplicatePair],
    summary="Pairs of records that are probably one person, most likely first",
)
async def find_duplicates(
    auth: CustomersRead,
    session: TenantSession,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    min_score: Annotated[float, Query(ge=0, le=1)] = 0.5,
) -> list[DuplicatePair]:
    found = await duplicates.find(session, auth.tenant_id, limit=limit, min_score=min_score)
    ids = {c.a for c in found} | {c.b for c in found}
    rows = await session.execute(
        sa.select(CustomerModel).where(
            CustomerModel.tenant_id == auth.tenant_id, CustomerModel.id.in_(ids)
        )
    )
    by_id = {c.id: Customer.model_validate(c) for c in rows.scalars()}
    return [
        DuplicatePair(score=c.score, reasons=c.reasons, customers=[by_id[c.a], by_id[c.b]])
        for c in found
    ]


@router.post(
    "/merge",
    response_model=MergeResult,
    status_code=201,
    summary="Merge a secondary record into a primary one (undoable)",
)
async def merge_customers(
    body: MergeRequest, auth: CustomersWrite, session: TenantSession, response: Response
) -> MergeResult:
    record, primary = await merge.merge(
        session,
        auth,
        body.primary,
        body.secondary,
        {str(name): side for name, side in body.fields.items()},
    )
    response.headers["Location"] = f"/api/v1/customers/merges/{record.id}"
    response.headers["ETag"] = service.etag(primary)
    return MergeResult(
        merge=Merge.model_validate(record), customer=Customer.model_validate(primary)
    )


@router.get("/merges/{merge_id}", response_model=Merge, summary="A merge and whether it was undone")
async def get_merge(merge_id: str, auth: CustomersRead, session: TenantSession) -> Merge:
    return Merge.model_validate(await merge.get(session, auth, merge_id))


@router.post(
    "/merges/{merge_id}/undo",
    response_model=UndoResult,
    summary="Undo a merge: both records as they were before it, notes back where they were",
)
async def undo_merge(merge_id: str, auth: CustomersWrite, session: TenantSession) -> UndoResult:
    record, primary, secondary = await merge.undo(session, auth, merge_id)
    return UndoResult(
        merge=Merge.model_validate(record),
        primary=Customer.model_validate(primary),
        secondary=Customer.model_validate(secondary),
    )


# Declared before /{customer_id}, so "me" is never taken for an id.
@router.get("/me", response_model=Customer, summary="My own record (customer-role users)")
async def get_me(auth: SelfRead, session: TenantSession, response: Response) -> CustomerModel:
    return _with_etag(response, await service.own_record(session, auth))


@router.patch("/me", response_model=Customer, summary="Change my own record")
async def patch_me(
    body: CustomerSelfPatch,
    auth: SelfWrite,
    session: TenantSession,
    response: Response,
    if_match: IfMatch = None,
) -> CustomerModel:
    own = await service.own_record(session, auth)
    patch = CustomerPatch.model_validate(body.model_dump(exclude_unset=True))
    customer = await service.patch(session, auth, own.id, patch, if_match)
    return _with_etag(response, customer)


@router.get("/{customer_id}", response_model=Customer, summary="Get a customer (with its ETag)")
async def get_customer(customer_id: str, auth: CustomersRead, request: Request) -> Response:
    # Read cache (cache/service.py) in front of the one-round-trip read.
    runtime = runtime_of(request)
    body, etag = await runtime.read_cache.customer(
        auth.tenant_id, customer_id, lambda: reads.customer_document(runtime.db, auth, customer_id)
    )
    return Response(body, media_type="application/json", headers={"ETag": etag})


@router.put("/{customer_id}", response_model=Customer, summary="Replace a customer")
async def replace_customer(
    customer_id: str,
    body: CustomerCreate,
    auth: CustomersWrite,
    session: TenantSession,
    response: Response,
    if_match: IfMatch = None,
) -> CustomerModel:
    customer = await service.replace(session, auth, customer_id, body, if_match)
    return _with_etag(response, customer)


@router.patch(
    "/{customer_id}", response_model=Customer, summary="Change a customer (JSON merge patch)"
)
async def patch_customer(
    customer_id: str,
    body: CustomerPatch,
    auth: CustomersWrite,
    session: TenantSession,
    response: Response,
    if_match: IfMatch = None,
) -> CustomerModel:
    customer = await service.patch(session, auth, customer_id, body, if_match)
    return _with_etag(response, customer)


@router.delete(
    "/{customer_id}",
    status_code=204,
    summary="Soft-delete a customer; ?hard_delete=true removes it (needs customers:delete)",
)
async def delete_customer(
    customer_id: str,
    auth: CustomersWrite,
    session: TenantSession,
    hard_delete: bool = False,
) -> Response:
    await service.delete(session, auth, customer_id, hard=hard_delete)
    return Response(status_code=204)


@router.post(
    "/{customer_id}/restore", response_model=Customer, summary="Restore a soft-deleted customer"
)
async def restore_customer(
    customer_id: str, auth: CustomersWrite, session: TenantSession, response: Response
) -> CustomerModel:
    return _with_etag(response, await service.restore(session, auth, customer_id))


@router.get("/{customer_id}/notes", response_model=list[Note], summary="A customer's notes")
async def list_notes(
    customer_id: str, auth: CustomersRead, session: TenantSession, limit: Limit = 50
) -> list[CustomerNote]:
    return list(await notes.list_notes(session, auth, customer_id, limit))


@router.post("/{customer_id}/notes", response_model=Note, status_code=201, summary="Add a note")
async def add_note(
    customer_id: str, body: NoteCreate, auth: CustomersWrite, session: TenantSession
) -> CustomerNote:
    return await notes.add_note(session, auth, customer_id, body.body)


@router.delete("/{customer_id}/notes/{note_id}", status_code=204, summary="Delete a note")
async def delete_note(
    customer_id: str, note_id: str, auth: CustomersWrite, session: TenantSession
) -> Response:
    await notes.delete_note(session, auth, customer_id, note_id)
    return Response(status_code=204)


@router.get(
    "/{customer_id}/timeline",
    response_model=list[TimelineEntry],
    summary="The record's history and notes, newest first",
)
async def timeline(
    customer_id: str, auth: CustomersRead, session: TenantSession, limit: Limit = 50
) -> list[TimelineEntry]:
    entries = await notes.timeline(session, auth, customer_id, limit)
    return [TimelineEntry.model_validate(e) for e in entries]


@router.get("/{customer_id}/statistics", response_model=Statistics, summary="Orders and complaints")
async def get_statistics(
    customer_id: str, auth: CustomersRead, session: TenantSession
) -> CustomerModel:
    return await service.get(session, auth, customer_id)


@internal_router.patch(
    "/{customer_id}/statistics",
    response_model=StatisticsResult,
    summary="Report order and complaint increments (idempotent on increment_id)",
)
async def increment_statistics(
    customer_id: str, body: StatisticsIncrement, auth: InternalWrite, session: TenantSession
) -> StatisticsResult:
    customer, applied = await statistics.apply_increment(session, auth, customer_id, body)
    return StatisticsResult.model_validate(
        {**Statistics.model_validate(customer).model_dump(), "applied": applied}
    )


@internal_router.post(
    "",
    response_model=Customer,
    status_code=201,
    summary="Create a customer from an upstream service (idempotent on external_id)",
    responses={200: {"description": "Already known: the existing record"}},
)
async def create_from_upstream(
    body: CustomerCreate, auth: InternalWrite, session: TenantSession, response: Response
) -> CustomerModel:
    customer, created = await service.create_from_upstream(session, auth, body)
    if not created:
        response.status_code = 200
    return _with_etag(response, customer)


@internal_router.get(
    "/by-external-id/{external_id}",
    response_model=Customer,
    summary="Find a customer by the upstream service's id",
)
async def get_by_external_id(
    external_id: str, auth: CustomersRead, session: TenantSession, response: Response
) -> CustomerModel:
    customer = await service.by_external_id(session, auth, external_id)
    if customer is None:
        raise NotFound("No customer has this external_id")
    return _with_etag(response, customer)
