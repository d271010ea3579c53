from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from pydantic import AwareDatetime

from custos.auth.dependencies import CustomersRead, CustomersWrite, TenantSession
from custos.customer import notes, service
from custos.customer.repository import CustomerRepository
from custos.customer.schemas import (
    Customer,
    CustomerCreate,
    CustomerPatch,
    CustomerStatus,
    CustomerType,
    Note,
    NoteCreate,
    TimelineEntry,
)
from custos.exceptions import InvalidInput
from custos.kit.pagination import Cursor, Limit, Page, keyset_page
from custos.kit.routing import CustosRoute
from custos.models import Customer as CustomerModel
from custos.models import CustomerNote

router = APIRouter(route_class=CustosRoute, prefix="/customers", tags=["customers"])

IfMatch = Annotated[
    str | None,
    Header(max_length=200, description="The ETag you read; a stale one gets 412"),
]


def _with_etag(response: Response, customer: CustomerModel) -> CustomerModel:
    response.headers["ETag"] = service.etag(customer)
    return customer


@router.post("", response_model=Customer, status_code=201, summary="Create a customer")
async def create_customer(
    body: CustomerCreate, auth: CustomersWrite, session: TenantSession, response: Response
) -> CustomerModel:
    customer = await service.create(session, auth, body)
    response.headers["Location"] = f"/api/v1/customers/{customer.id}"
    return _with_etag(response, customer)


@router.get("", response_model=Page[Customer], summary="List customers, newest first")
async def list_customers(
    auth: CustomersRead,
    session: TenantSession,
    limit: Limit = 50,
    cursor: Cursor = None,
    skip: Annotated[
        int | None, Query(ge=0, le=100_000, description="Offset, for seed-era clients")
    ] = None,
    status: CustomerStatus | None = None,
    customer_type: CustomerType | None = None,
    tag: Annotated[str | None, Query(max_length=50)] = None,
    company: Annotated[str | None, Query(max_length=200)] = None,
    is_active: bool | None = None,
    include_deleted: bool = False,
    created_after: AwareDatetime | None = None,
    created_before: AwareDatetime | None = None,
    updated_since: AwareDatetime | None = None,
) -> Page[Customer]:
    if is_active is not None:
        wanted = CustomerStatus.active if is_active else CustomerStatus.inactive
        if status is not None and status != wanted:
            return Page[Customer](items=[])
        status = wanted
    stmt = CustomerRepository(session, auth.tenant_id).list_statement(
        status=status,
        customer_type=customer_type,
        company=company,
        created_after=created_after,
        created_before=created_before,
        updated_since=updated_since,
        include_deleted=include_deleted,
        tag=tag,
    )
    if skip is not None:
        if cursor is not None:
            raise InvalidInput("Use either `cursor` or `skip`, not both")
        rows = await session.execute(
            stmt.order_by(CustomerModel.id.desc()).offset(skip).limit(limit)
        )
        return Page[Customer](items=[Customer.model_validate(c) for c in rows.scalars()])
    items, next_cursor = await keyset_page(
        session, stmt, CustomerModel.id, limit=limit, cursor=cursor
    )
    return Page[Customer](
        items=[Customer.model_validate(c) for c in items], next_cursor=next_cursor
    )


@router.get("/{customer_id}", response_model=Customer, summary="Get a customer (with its ETag)")
async def get_customer(
    customer_id: str, auth: CustomersRead, session: TenantSession, response: Response
) -> CustomerModel:
    return _with_etag(response, await service.get(session, auth, customer_id))


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
