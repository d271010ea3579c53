"""POST /customers, the hottest write, in one round trip on PostgreSQL.

The generic create costs five round trips (BEGIN with the tenant settings, the INSERT, the
audit row, the event, COMMIT), an ORM unit of work, and the record serialised three times.
Here the same rows, built by the same functions (`service.new_row`,
`audit.new_entry`, `event.new_row`), travel in one message (`Database.one_round_trip`):
one implicit transaction, so the record, its audit row and its event commit together or
not at all, row-level security checks the insert, and the unique indexes answer a clash
with the same 409. The record is serialised once, for the response and the event.

With an Idempotency-Key (its claim must share the write's transaction), on SQLite, or
without the tenant's settings at hand, the generic path runs. A contract test holds the
two paths' output equal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import orjson
import psycopg
import sqlalchemy as sa
from fastapi import Response

from custos import events
from custos.audit import service as audit
from custos.auth.principal import Principal
from custos.customer import service
from custos.customer.phones import PhonePolicy
from custos.customer.reads import FIELDS
from custos.customer.schemas import Customer as CustomerOut
from custos.customer.schemas import CustomerCreate
from custos.db import Database
from custos.event import outbox
from custos.event import service as event_log
from custos.kit.idempotency import created_once
from custos.models import AuditLog, Customer, Event


def _insert(table: sa.Table) -> Callable[[dict[str, Any]], tuple[str, list[Any]]]:
    """INSERT of a row given as {column: value}: the statement (one per set of columns, kept)
    and its parameters, JSON columns serialised and cast."""
    json_columns = frozenset(c.name for c in table.columns if isinstance(c.type, sa.JSON))
    statements: dict[tuple[str, ...], str] = {}

    def insert(row: dict[str, Any]) -> tuple[str, list[Any]]:
        columns = tuple(row)
        statement = statements.get(columns)
        if statement is None:
            names = ", ".join(f'"{c}"' for c in columns)
            values = ", ".join("%s::jsonb" if c in json_columns else "%s" for c in columns)
            statement = statements[columns] = (
                f"INSERT INTO {table.name} ({names}) VALUES ({values})"
            )
        params = [
            orjson.dumps(value).decode() if name in json_columns and value is not None else value
            for name, value in row.items()
        ]
        return statement, params

    return insert


_insert_customer = _insert(cast(sa.Table, Customer.__table__))
_insert_audit_entry = _insert(cast(sa.Table, AuditLog.__table__))
_insert_event = _insert(cast(sa.Table, Event.__table__))


def _headers(customer_id: str, version: int) -> dict[str, str]:
    return {
        "ETag": f'"{customer_id}.{version}"',
        "Location": f"/api/v1/customers/{customer_id}",
    }


async def create(
    db: Database, actor: Principal, body: CustomerCreate, idempotency_key: str | None
) -> Response:
    """201 with the new customer as the API shows it, its ETag and Location."""
    if idempotency_key is None and db.is_postgres and actor.tenant_settings is not None:
        content, headers = await _create_in_one_round_trip(
            db, actor, body, PhonePolicy.from_settings(actor.tenant_settings)
        )
        return Response(content, 201, media_type="application/json", headers=headers)
    async with db.transaction(tenant_id=actor.tenant_id) as session:

        async def make() -> tuple[dict[str, Any], dict[str, str]]:
            customer = await service.create(session, actor, body)
            content = CustomerOut.model_validate(customer).model_dump(mode="json")
            return content, _headers(customer.id, customer.version)

        return await created_once(session, actor, idempotency_key, "/customers", body, make)


async def _create_in_one_round_trip(
    db: Database, actor: Principal, body: CustomerCreate, policy: PhonePolicy
) -> tuple[bytes, dict[str, str]]:
    # A row, not an ORM object: nothing here needs the unit of work.
    row = service.new_row(actor, body, policy)
    customer = service.by_attribute(row)
    shown = CustomerOut.model_validate({field: customer[field] for field in FIELDS})
    document = CustomerOut.__pydantic_serializer__.to_json(shown)
    entry = audit.new_entry(
        actor,
        "customer.created",
        "customer",
        row["id"],
        changes=service.created_audit_changes(customer),
    )
    event = event_log.new_row(
        actor,
        events.CUSTOMER_CREATED,
        {"customer": orjson.Fragment(document)},
        subject_type="customer",
        subject_id=row["id"],
    )
    statements, params = [], []
    for statement, values in (
        _insert_customer(row),
        _insert_audit_entry(entry),
        _insert_event(event),
        # As emit() does on the generic path: the event named for dispatch.
        outbox.insert(actor.tenant_id, [event["id"]]),
    ):
        statements.append(statement)
        params.extend(values)
    try:
        await db.one_round_trip(actor.tenant_id, "; ".join(statements), params)
    except psycopg.errors.UniqueViolation as exc:
        raise service.duplicate_conflict(exc) from None
    # What the generic path's commit hooks would do: seal the new audit row into the chain,
    # and retire the tenant's cached list pages (before the response, as they do).
    if db.audit_sealer is not None:
        db.audit_sealer.request([actor.tenant_id])
    if db.read_cache is not None:
        await db.read_cache.invalidate({actor.tenant_id: {row["id"]}})
    return document, _headers(row["id"], row["version"])
