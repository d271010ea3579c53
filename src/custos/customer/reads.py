"""GET /customers/{id}, the hottest read, in one round trip on PostgreSQL.

The generic path costs four round trips (BEGIN, setting the tenant, the SELECT, COMMIT)
plus an ORM object and two validations. Here the tenant settings and the SELECT travel in
one simple-protocol message, which PostgreSQL runs as one implicit transaction: the
transaction-local tenant setting holds for the SELECT and ends with it, and row-level
security applies exactly as on the generic path (same pool, same runtime role). Values are
quoted by the driver and the id is checked for shape first. A contract test holds this
path's output equal to the generic one's.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from custos.auth.principal import Principal
from custos.customer import service
from custos.customer.schemas import Customer
from custos.db import Database
from custos.exceptions import DatabaseUnavailable, NotFound
from custos.kit.ids import is_valid_id

# The API's fields, in order, by the ORM's names: the metadata column is its `attributes`.
_FIELDS = tuple(
    field.validation_alias if isinstance(field.validation_alias, str) else name
    for name, field in Customer.model_fields.items()
)
_COLUMNS = sql.SQL(", ").join(
    sql.SQL("{} AS {}").format(
        sql.Identifier("metadata" if f == "attributes" else f), sql.Identifier(f)
    )
    for f in _FIELDS
)
_QUERY = sql.SQL(
    "SELECT set_config('app.tenant_id', {tenant}, true), set_config('app.bypass_rls', 'off', true);"
    " SELECT {columns} FROM customers"
    " WHERE tenant_id = {tenant} AND id = {id} AND deleted_at IS NULL"
)


def _document(values: dict[str, Any]) -> tuple[bytes, str]:
    model = Customer.model_validate(values)
    return Customer.__pydantic_serializer__.to_json(model), f'"{model.id}.{model.version}"'


async def customer_document(db: Database, actor: Principal, customer_id: str) -> tuple[bytes, str]:
    """The customer as the API shows it (JSON) and its ETag; NotFound if not visible."""
    if not is_valid_id(customer_id, "cus"):
        raise NotFound("No such customer")
    if not db.is_postgres:
        async with db.transaction(tenant_id=actor.tenant_id, write=False) as session:
            customer = await service.get(session, actor, customer_id)
            return _document({f: getattr(customer, f) for f in _FIELDS})
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: psycopg.AsyncConnection[Any] = raw.driver_connection  # type: ignore[assignment]
        query = _QUERY.format(
            tenant=sql.Literal(actor.tenant_id), id=sql.Literal(customer_id), columns=_COLUMNS
        ).as_string(driver)
        try:
            await driver.set_autocommit(True)
            try:
                cursor = driver.cursor()
                await cursor.execute(query.encode(), prepare=False)
                cursor.nextset()
                row = await cursor.fetchone()
            finally:
                await driver.set_autocommit(False)
        except psycopg.OperationalError as error:
            # As SQLAlchemy does on a disconnect it sees itself: every connection of this
            # generation is suspect (a server restart ends them all), so the whole pool is
            # recycled on checkout, not only this one connection.
            db.engine.sync_engine.pool._invalidate(raw, error)
            raise DatabaseUnavailable() from None
    if row is None:
        raise NotFound("No such customer")
    return _document(dict(zip(_FIELDS, row, strict=True)))
