"""Recording answered messages on PostgreSQL in one round trip.

The generic record is a transaction of five round trips (BEGIN, the tenant setting, the
attempts, the deliveries, COMMIT). Until it commits, a message the receiver already has is
not known to be delivered: a worker killed in that window sends it again. When every answer
in a batch is a success, the tenant settings, the attempts and the deliveries' update travel
in one simple-protocol message, which PostgreSQL runs as one implicit transaction under the
same row-level security (as `customer/reads.py` does for the hottest read). Values are
quoted by the driver.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from custos.db import Database
from custos.exceptions import DatabaseUnavailable

_ATTEMPT_COLUMNS = (
    "id",
    "tenant_id",
    "delivery_id",
    "number",
    "started_at",
    "duration_ms",
    "status_code",
    "outcome",
    "error",
    "response_body",
)


def _values(rows: list[tuple[Any, ...]], casts: tuple[str, ...]) -> sql.Composed:
    return sql.SQL(", ").join(
        sql.SQL("({})").format(
            sql.SQL(", ").join(
                sql.SQL("{}::{}").format(sql.Literal(value), sql.SQL(cast))
                for value, cast in zip(row, casts, strict=True)
            )
        )
        for row in rows
    )


async def record_successes(
    db: Database,
    tenant_id: str,
    attempts: list[dict[str, Any]],
    succeeded: list[tuple[str, int, int]],
    now: datetime,
) -> None:
    """`attempts`: webhook_attempts rows; `succeeded`: (delivery id, attempts, status)."""
    attempt_rows = [tuple(row[c] for c in _ATTEMPT_COLUMNS) for row in attempts]
    query = sql.SQL(
        "SELECT set_config('app.tenant_id', {tenant}, true),"
        " set_config('app.bypass_rls', 'off', true);"
        # A data-modifying WITH runs to completion whether or not the UPDATE reads it.
        " WITH recorded AS (INSERT INTO webhook_attempts ({columns}) VALUES {attempts})"
        " UPDATE webhook_deliveries AS d SET status = 'succeeded', attempts = v.number,"
        " succeeded_at = {now}, last_attempt_at = {now}, last_status_code = v.code,"
        " last_error = NULL, next_attempt_at = NULL, claim = NULL, claimed_until = NULL"
        " FROM (VALUES {deliveries}) AS v(id, number, code)"
        " WHERE d.id = v.id AND d.tenant_id = {tenant}"
    ).format(
        tenant=sql.Literal(tenant_id),
        columns=sql.SQL(", ").join(sql.Identifier(c) for c in _ATTEMPT_COLUMNS),
        attempts=_values(
            attempt_rows,
            ("text", "text", "text", "int", "timestamptz", "float8", "int", "text", "text", "text"),
        ),
        now=sql.Literal(now),
        deliveries=_values(succeeded, ("text", "int", "int")),
    )
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: psycopg.AsyncConnection[Any] = raw.driver_connection  # type: ignore[assignment]
        try:
            await driver.set_autocommit(True)
            try:
                await driver.execute(query.as_string(driver).encode(), prepare=False)
            finally:
                await driver.set_autocommit(False)
        except psycopg.OperationalError as error:
            db.engine.sync_engine.pool._invalidate(raw, error)
            raise DatabaseUnavailable() from None
