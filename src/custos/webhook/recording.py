"""Recording successful answers on PostgreSQL in one round trip.

The generic record is a transaction of five round trips (BEGIN, the tenant setting, the
attempts, the deliveries, COMMIT). Until it commits, a message the receiver already has is
not known to be delivered: a worker killed in that window sends it again. For successes, the
tenant settings, the attempts and the deliveries' update travel in one simple-protocol
message, which PostgreSQL runs as one implicit transaction under the same row-level
security (as `customer/reads.py` does for the hottest read). Values are quoted by the driver.

The commit does not wait for the WAL flush (`synchronous_commit` off for this transaction
only): the worker's side of the window is then one round trip, not a disk write. Only a
PostgreSQL crash can lose such a record (the last few hundred milliseconds of them), and a
lost record of a success means the message is sent again, never that it is lost: anything
later that depends on it (the job's deletion) commits synchronously, which flushes these
records first.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from custos.db import Database
from custos.exceptions import DatabaseUnavailable
from custos.kit.time import utcnow

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
        " set_config('app.bypass_rls', 'off', true),"
        " set_config('synchronous_commit', 'off', true);"
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


@dataclass(slots=True)
class _Answer:
    attempt: dict[str, Any]
    success: tuple[str, int, int]
    recorded: asyncio.Future[None]


class SuccessRecorder:
    """The successes of one process, each written as soon as it arrives. Answers that arrive
    in the same turn of the event loop share a round trip (one per tenant); nothing waits
    for a record already on its way, several of which may be in flight at once. Batching
    only what is already there costs no latency and saves round trips under load."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: dict[str, list[_Answer]] = {}
        self._writing: set[asyncio.Task[None]] = set()

    async def record(
        self, tenant_id: str, attempt: dict[str, Any], success: tuple[str, int, int]
    ) -> None:
        """Returns once the answer is recorded (committed); raises if it could not be."""
        loop = asyncio.get_running_loop()
        answer = _Answer(attempt, success, loop.create_future())
        batch = self._pending.get(tenant_id)
        if batch is None:
            batch = self._pending[tenant_id] = []
            loop.call_soon(self._write, tenant_id)
        batch.append(answer)
        await answer.recorded

    def _write(self, tenant_id: str) -> None:
        batch = self._pending.pop(tenant_id, [])
        task = asyncio.ensure_future(self._write_batch(tenant_id, batch))
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)

    async def _write_batch(self, tenant_id: str, batch: list[_Answer]) -> None:
        try:
            await record_successes(
                self.db,
                tenant_id,
                [a.attempt for a in batch],
                [a.success for a in batch],
                utcnow(),
            )
        except asyncio.CancelledError:
            for answer in batch:
                answer.recorded.cancel()
            raise
        except Exception as exc:
            for answer in batch:
                if not answer.recorded.done():
                    answer.recorded.set_exception(exc)
            return
        for answer in batch:
            if not answer.recorded.done():
                answer.recorded.set_result(None)


_RECORDERS: weakref.WeakKeyDictionary[Database, SuccessRecorder] = weakref.WeakKeyDictionary()


def recorder_of(db: Database) -> SuccessRecorder:
    found = _RECORDERS.get(db)
    if found is None:
        found = _RECORDERS[db] = SuccessRecorder(db)
    return found
