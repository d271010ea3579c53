from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from custos import events
from custos.audit import service as audit
from custos.auth.principal import Principal
from custos.customer.duplicates import email_key
from custos.customer.phones import PhonePolicy, to_e164
from custos.customer.repository import CustomerRepository
from custos.customer.schemas import Customer as CustomerOut
from custos.customer.schemas import CustomerCreate, CustomerPatch, check_metadata
from custos.event import service as event_log
from custos.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from custos.kit.etag import check_if_match
from custos.kit.etag import etag as etag  # the endpoints set the header
from custos.kit.ids import new_id
from custos.kit.time import utcnow
from custos.models import Customer, Tenant

# What a write can change; `customer.updated` names those that did.
EDITABLE = (
    "external_id",
    "email",
    "full_name",
    "phone",
    "phone_e164",
    "company",
    "address",
    "customer_type",
    "status",
    "tags",
    "attributes",
)

# Fields an audit row records by name; values of personal fields are masked there.
AUDITED = (
    "external_id",
    "email",
    "full_name",
    "phone",
    "company",
    "customer_type",
    "status",
    "tags",
)


async def _phone_policy(session: AsyncSession, actor: Principal) -> PhonePolicy:
    settings = actor.tenant_settings
    if settings is None:
        tenant = await session.get(Tenant, actor.tenant_id)
        settings = tenant.settings if tenant else {}
    return PhonePolicy.from_settings(settings)


def _apply_phone(customer: Customer, phone: str | None, policy: PhonePolicy) -> None:
    customer.phone = phone
    customer.phone_e164 = _e164(phone, policy)


def _e164(phone: str | None, policy: PhonePolicy) -> str | None:
    """The number in E.164, if it reads as one; a strict tenant refuses one that does not."""
    normalised = to_e164(phone, policy.region) if phone else None
    if phone and normalised is None and policy.strict:
        raise InvalidInput(
            "The phone number cannot be read as a valid number",
            errors=[{"loc": ["body", "phone"], "msg": "not a valid phone number"}],
        )
    return normalised


async def flush(session: AsyncSession) -> None:
    """Flush; a unique index refusing the email or external_id is a 409 naming the field.

    The indexes are the only check (no look-up first): one round trip less per write, and
    no window between a check and the insert for a concurrent write to slip through.
    """
    try:
        await session.flush()
    except IntegrityError as exc:
        raise duplicate_conflict(exc.orig) from None


def duplicate_conflict(driver_error: BaseException | None) -> Conflict:
    """The 409 for a unique index refusing a write, naming the field when it can tell."""
    diag = getattr(driver_error, "diag", None)
    # PostgreSQL names the index; SQLite names its columns.
    text = str(getattr(diag, "constraint_name", None) or driver_error)
    field = next((f for f in ("external_id", "email") if f in text), None)
    return Conflict(
        f"Another customer already has this {field or 'email or external_id'}",
        errors=[{"loc": ["body", field], "msg": "already used by another customer"}]
        if field
        else None,
    )


def derive(customer: Customer) -> None:
    """Recompute the columns kept for search and duplicate detection."""
    customer.search_text = search_text(customer)
    customer.email_key = email_key(customer.email) if customer.email else None


def search_text(customer: Customer) -> str:
    """What `?q=` matches: name, email and company lower-cased, and the phone's digits (as
    given and in E.164), so any way of writing the number finds it."""
    phones = " ".join(digits(p) for p in (customer.phone, customer.phone_e164) if p)
    parts = (customer.full_name, customer.email, customer.company, phones)
    return " ".join(p for p in parts if p).lower()


_NOT_ASCII_DIGIT = re.compile(r"[^0-9]+")


def digits(value: str) -> str:
    if value.isascii():  # the common case, at bulk speed: the same answer as below
        return _NOT_ASCII_DIGIT.sub("", value)
    return "".join(ch for ch in value if ch.isdigit())


def audited(customer: Customer) -> dict[str, Any]:
    return {name: getattr(customer, name) for name in AUDITED}


def api_names(fields: set[str]) -> list[str]:
    return sorted("metadata" if name == "attributes" else name for name in fields)


def emit(
    session: AsyncSession,
    actor: Principal,
    event_type: events.EventType,
    customer: Customer,
    **extra: Any,
) -> None:
    """An event carrying the record as the API shows it, plus type-specific fields."""
    payload = {"customer": CustomerOut.model_validate(customer).model_dump(mode="json"), **extra}
    event_log.emit(
        session, actor, event_type, payload, subject_type="customer", subject_id=customer.id
    )


# The record's attributes by column: the ORM calls the `metadata` column `attributes`.
ATTRIBUTE_COLUMNS = tuple(
    (attr.key, attr.columns[0].name) for attr in sa.inspect(Customer).column_attrs
)


def new_row_shared(actor: Principal, now: datetime) -> dict[str, Any]:
    """What every record a create makes for the actor's tenant at `now` holds, whatever its
    body (a bulk import formats it once for many rows)."""
    return {
        "tenant_id": actor.tenant_id,
        "order_count": 0,
        "total_order_value": Decimal("0.00"),  # as the column (scale 2) gives it back
        "currency": None,
        "complaint_count": 0,
        "last_order_at": None,
        "deleted_at": None,
        "merged_into_id": None,
        "anonymized_at": None,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }


def new_row(
    actor: Principal,
    body: CustomerCreate,
    policy: PhonePolicy,
    customer_id: str | None = None,
    now: datetime | None = None,
    *,
    shared: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The row a create inserts, by column name, normalised and with its derived columns:
    what the API's create, both its paths, and a bulk import write. `shared` is
    `new_row_shared(actor, now)`, when the caller has it already."""
    phone_e164 = _e164(body.phone, policy)
    row: dict[str, Any] = {
        "id": customer_id or new_id("cus"),
        "external_id": body.external_id,
        "email": body.email,
        "email_key": email_key(body.email) if body.email else None,
        "full_name": body.full_name,
        "phone": body.phone,
        "phone_e164": phone_e164,
        "company": body.company,
        "address": body.address.model_dump() if body.address else None,
        "customer_type": body.customer_type.value,
        "status": body.status.value,
        "tags": body.tags,
        "metadata": body.metadata,
        **(shared if shared is not None else new_row_shared(actor, now or utcnow())),
    }
    row["search_text"] = search_text(cast(Customer, SimpleNamespace(**row)))
    return row


def by_attribute(row: dict[str, Any]) -> dict[str, Any]:
    """A row (by column) as the record's attributes: what `CustomerOut` and the audit read."""
    return {key: row[column] for key, column in ATTRIBUTE_COLUMNS}


def new_customer(actor: Principal, body: CustomerCreate, policy: PhonePolicy) -> Customer:
    """The record a create makes (`new_row`), not yet stored."""
    return Customer(**by_attribute(new_row(actor, body, policy)))


def created_audit_changes(customer: Customer | dict[str, Any]) -> dict[str, Any]:
    """The audit's changes for a new record (or its attributes, `by_attribute`)."""
    values = customer if isinstance(customer, dict) else audited(customer)
    return audit.changed_fields({}, {name: values[name] for name in AUDITED})


async def create(session: AsyncSession, actor: Principal, body: CustomerCreate) -> Customer:
    customer = new_customer(actor, body, await _phone_policy(session, actor))
    session.add(customer)
    await flush(session)
    audit.record(
        session,
        actor,
        "customer.created",
        "customer",
        customer.id,
        changes=created_audit_changes(customer),
    )
    emit(session, actor, events.CUSTOMER_CREATED, customer)
    return customer


async def get(
    session: AsyncSession, actor: Principal, customer_id: str, *, include_deleted: bool = False
) -> Customer:
    customer = await CustomerRepository(session, actor.tenant_id).get(
        customer_id, include_deleted=include_deleted
    )
    if customer is None:
        raise NotFound("No such customer")
    return customer


async def replace(
    session: AsyncSession,
    actor: Principal,
    customer_id: str,
    body: CustomerCreate,
    if_match: str | None,
) -> Customer:
    """PUT: every field takes the body's value (absent optional fields become empty)."""
    values = body.model_dump()
    values["address"] = body.address.model_dump() if body.address else None
    return await _change(session, actor, customer_id, values, if_match, merge_metadata=False)


async def patch(
    session: AsyncSession,
    actor: Principal,
    customer_id: str,
    body: CustomerPatch,
    if_match: str | None,
) -> Customer:
    values = body.model_dump(exclude_unset=True)
    for required in ("full_name", "customer_type", "status", "tags"):
        if required in values and values[required] is None:
            raise InvalidInput(
                f"{required} cannot be null",
                errors=[{"loc": ["body", required], "msg": "cannot be null"}],
            )
    if body.address is not None and "address" in values:
        values["address"] = body.address.model_dump(exclude_unset=False)
    return await _change(session, actor, customer_id, values, if_match, merge_metadata=True)


def merge_patch(
    target: dict[str, Any], patch: dict[str, Any], *, null_deletes: bool = True
) -> dict[str, Any]:
    """RFC 7386 on a JSON object; with null_deletes=False a null is kept as a value (for
    uniting two stored objects, where null is data, not an instruction)."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None and null_deletes:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value, null_deletes=null_deletes)
        else:
            merged[key] = value
    return merged


async def _change(
    session: AsyncSession,
    actor: Principal,
    customer_id: str,
    values: dict[str, Any],
    if_match: str | None,
    *,
    merge_metadata: bool,
) -> Customer:
    customer = await get(session, actor, customer_id)
    check_if_match(customer, if_match, what="record")
    before = audited(customer)
    before_all = {name: getattr(customer, name) for name in EDITABLE}
    if "metadata" in values:
        metadata = values.pop("metadata") or {}
        if merge_metadata:
            metadata = merge_patch(customer.attributes, metadata)
        try:
            check_metadata(metadata)
        except ValueError as exc:
            raise InvalidInput(
                str(exc), errors=[{"loc": ["body", "metadata"], "msg": str(exc)}]
            ) from None
        customer.attributes = metadata
    if "phone" in values:
        _apply_phone(customer, values.pop("phone"), await _phone_policy(session, actor))
    for name, value in values.items():
        setattr(customer, name, value)
    changed = {name for name, value in before_all.items() if getattr(customer, name) != value}
    derive(customer)
    customer.version += 1
    await flush(session)
    changes = audit.changed_fields(before, audited(customer))
    audit.record(session, actor, "customer.updated", "customer", customer.id, changes=changes)
    emit(session, actor, events.CUSTOMER_UPDATED, customer, changed_fields=api_names(changed))
    return customer


async def delete(session: AsyncSession, actor: Principal, customer_id: str, *, hard: bool) -> None:
    if hard and "customers:delete" not in actor.scopes:
        raise Forbidden("Permanent deletion needs the scope customers:delete")
    customer = await get(session, actor, customer_id, include_deleted=hard)
    if hard:
        emit(session, actor, events.CUSTOMER_DELETED, customer, hard=True)
        await session.delete(customer)
        await session.flush()
        audit.record(session, actor, "customer.hard_deleted", "customer", customer.id)
        return
    customer.deleted_at = utcnow()
    customer.version += 1
    await session.flush()
    audit.record(session, actor, "customer.deleted", "customer", customer.id)
    emit(session, actor, events.CUSTOMER_DELETED, customer, hard=False)


async def restore(session: AsyncSession, actor: Principal, customer_id: str) -> Customer:
    customer = await get(session, actor, customer_id, include_deleted=True)
    if customer.deleted_at is None:
        raise Conflict("This customer is not deleted")
    if customer.merged_into_id is not None:
        raise Conflict(
            f"This customer was merged into {customer.merged_into_id}; undo the merge instead"
        )
    customer.deleted_at = None
    customer.version += 1
    await flush(session)
    audit.record(session, actor, "customer.restored", "customer", customer.id)
    emit(session, actor, events.CUSTOMER_RESTORED, customer)
    return customer


async def create_from_upstream(
    session: AsyncSession, actor: Principal, body: CustomerCreate
) -> tuple[Customer, bool]:
    """Idempotent on external_id: an upstream service may send the same person again."""
    if not body.external_id:
        raise InvalidInput(
            "external_id is required here",
            errors=[{"loc": ["body", "external_id"], "msg": "required"}],
        )
    existing = await by_external_id(session, actor, body.external_id)
    if existing is not None:
        return existing, False
    return await create(session, actor, body), True


async def by_external_id(
    session: AsyncSession, actor: Principal, external_id: str
) -> Customer | None:
    return await CustomerRepository(session, actor.tenant_id).live_by_external_id(external_id)


async def own_record(session: AsyncSession, actor: Principal) -> Customer:
    """The record a `customer`-role user is linked to."""
    if actor.customer_id is None:
        raise NotFound("No customer record is linked to this account")
    return await get(session, actor, actor.customer_id)
