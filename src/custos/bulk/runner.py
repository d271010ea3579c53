"""Running bulk operations: claimed under a lease, imported chunk by chunk.

Each chunk's rows, its rejected rows and the operation's checkpoint (the last row number
committed) and counters are written in one transaction, and only while this worker holds
the lease: a worker killed mid-chunk leaves nothing of that chunk, and whoever takes the
operation over next resumes after the checkpoint. Exports start over (the file is written
aside and renamed into place only when complete).

An import is a pipeline: while a chunk's transaction is with the database, the next chunks
are read, validated and staged here, a slice of rows at a time with the event loop let in
between. The database server and this process then work at once. New customers on
PostgreSQL have two chunks written at once (`_writers`), the later one committing only
after the earlier: chunks always commit one after another, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import islice
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from custos.audit import service as audit
from custos.auth.principal import Principal, PrincipalKind
from custos.bulk import formats
from custos.bulk.customers import CustomerImporter, Prepared, RowError
from custos.bulk.exporter import Writer, record
from custos.bulk.rows import RowProblem, shape
from custos.bulk.schemas import (
    ExportFormat,
    ImportMode,
    ImportPreview,
    MatchOn,
    OperationStatus,
    Resource,
)
from custos.bulk.service import completed_event, queue_run
from custos.bulk.storage import storage_for
from custos.customer.phones import PhonePolicy
from custos.customer.repository import CustomerRepository
from custos.db import Database
from custos.exceptions import CustosError, InvalidInput
from custos.feedback import service as feedback_service
from custos.feedback.repository import FeedbackRepository
from custos.feedback.schemas import FeedbackCreate
from custos.kit.context import RequestContext, request_context
from custos.kit.gcpause import full_collections_deferred, gc_paused
from custos.kit.ids import IdRun
from custos.kit.overlap import let_finish
from custos.kit.periodic import Periodic
from custos.kit.time import utcnow
from custos.models import BulkOperation, BulkOperationError, Customer, Feedback, Tenant
from custos.runtime import Runtime

log = structlog.get_logger(__name__)

WORKER_ID = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
_ERRORS = cast(sa.Table, BulkOperationError.__table__)
_OPS = BulkOperation.__table__
# Rows validated between two turns of the event loop while the previous chunk is written:
# small enough that its statements wait little for their turn.
_SLICE_ROWS = 20
_AHEAD = 2  # chunks read and staged ahead of the one being written


class LeaseLost(Exception):
    """Another worker took the operation over, or it was cancelled."""


def _principal(op: BulkOperation, settings: dict[str, Any]) -> Principal:
    known = {k.value for k in PrincipalKind}
    kind = PrincipalKind(op.actor_type) if op.actor_type in known else PrincipalKind.system
    return Principal(
        kind=kind,
        id=op.actor_id or "system",
        tenant_id=op.tenant_id,
        scopes=frozenset(),
        tenant_settings=settings,
    )


async def claim(runtime: Runtime, operation_id: str) -> tuple[BulkOperation, Principal] | None:
    """Take the operation if nobody holds a live lease on it."""
    now = utcnow()
    until = now + timedelta(seconds=runtime.settings.bulk_lease_seconds)
    async with runtime.db.transaction(system=True) as session:
        result = await session.execute(
            sa.update(BulkOperation)
            .where(
                BulkOperation.id == operation_id,
                BulkOperation.status.in_(["queued", "running"]),
                sa.or_(BulkOperation.lease_owner.is_(None), BulkOperation.lease_expires_at < now),
            )
            .values(
                status="running",
                lease_owner=WORKER_ID,
                lease_expires_at=until,
                attempts=BulkOperation.attempts + 1,
                started_at=sa.func.coalesce(BulkOperation.started_at, now),
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
        op = (
            await session.execute(sa.select(BulkOperation).where(BulkOperation.id == operation_id))
        ).scalar_one()
        tenant = await session.get(Tenant, op.tenant_id)
        settings = dict(tenant.settings) if tenant else {}
    return op, _principal(op, settings)


async def _renew(db: Database, op: BulkOperation, seconds: float) -> bool:
    async with db.transaction(tenant_id=op.tenant_id) as session:
        result = await session.execute(
            sa.update(BulkOperation)
            .where(
                BulkOperation.id == op.id,
                BulkOperation.lease_owner == WORKER_ID,
                BulkOperation.status == "running",
            )
            .values(lease_expires_at=utcnow() + timedelta(seconds=seconds))
            .execution_options(synchronize_session=False)
        )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def _heartbeat(db: Database, op: BulkOperation, seconds: float) -> Any:
    """Renew the lease while slow steps run (loading a workbook, writing an export)."""
    lost = asyncio.Event()

    async def beat() -> None:
        if lost.is_set():
            return  # another worker holds it now
        try:
            if not await _renew(db, op, seconds):
                lost.set()
        except Exception:  # a missed beat is retried; the lease covers three
            log.warning("bulk_lease_renewal_failed", operation_id=op.id)

    # Stopped between renewals, never during one (kit/periodic.py says why).
    renewals = Periodic("bulk-lease", seconds / 3, beat)
    renewals.start()
    try:
        yield lost
    finally:
        await renewals.stop()


async def run(runtime: Runtime, operation_id: str) -> str | None:
    """Run (or resume) one operation; returns its final status, or None if another worker
    holds it or it is already finished."""
    claimed = await claim(runtime, operation_id)
    if claimed is None:
        return None
    op, actor = claimed
    token = request_context.set(RequestContext(request_id=op.request_id))
    seconds = runtime.settings.bulk_lease_seconds
    try:
        async with _heartbeat(runtime.db, op, seconds) as lost:
            if op.kind == "import":
                await _run_import(runtime, op, actor, lost)
            else:
                await _run_export(runtime, op, actor, lost)
        return await _finish(runtime.db, op, actor, "completed", None)
    except LeaseLost:
        log.info("bulk_lease_lost", operation_id=op.id)
        return None
    except CustosError as exc:
        return await _finish(runtime.db, op, actor, "failed", exc.detail)
    except Exception as exc:
        log.error("bulk_operation_failed", operation_id=op.id, error=type(exc).__name__)
        return await _finish(runtime.db, op, actor, "failed", "An internal error stopped it")
    finally:
        request_context.reset(token)


async def _finish(
    db: Database, op: BulkOperation, actor: Principal, status: str, error: str | None
) -> str | None:
    async with db.transaction(tenant_id=op.tenant_id) as session:
        current = (
            await session.execute(
                sa.select(BulkOperation)
                .where(BulkOperation.id == op.id, BulkOperation.lease_owner == WORKER_ID)
                .with_for_update()
            )
        ).scalar_one_or_none()
        if current is None or current.status != "running":
            return None
        current.status = status
        current.error = error[:500] if error else None
        current.finished_at = utcnow()
        current.lease_owner = None
        current.lease_expires_at = None
        await session.flush()
        audit.record(
            session,
            actor,
            f"bulk.{current.kind}_{status}",
            "bulk_operation",
            current.id,
            changes={
                name: {"from": None, "to": getattr(current, name)}
                for name in ("rows_processed", "created", "updated", "skipped", "failed")
            },
        )
        completed_event(session, actor, current)
    return status


# -- imports ---------------------------------------------------------------------------------


def _inspection(op: BulkOperation) -> formats.Inspection:
    return formats.Inspection(
        format=formats.FileFormat(op.format),
        encoding=op.options.get("encoding"),
        delimiter=op.options.get("delimiter"),
        headers=list(op.options.get("_headers", [])),
    )


class FeedbackRows:
    """Feedback rows: mapped, validated, customers found by id, external_id or email."""

    def __init__(
        self, actor: Principal, settings: Any, mapping: dict[str, str], defaults: dict[str, Any]
    ) -> None:
        self.actor = actor
        self.settings = settings
        self.mapping = mapping
        self.defaults = {"source": "import", **defaults}

    def prepare(self, row: int, values: dict[str, Any]) -> Prepared | RowError:
        try:
            item = shape(values, self.mapping, self.defaults)
        except RowProblem as problem:
            return RowError(row, problem.field, problem.reason)
        lookup: dict[str, Any] = {
            k: item.pop(k) for k in ("customer_external_id", "customer_email") if k in item
        }
        try:
            body = FeedbackCreate.model_validate(item)
        except ValidationError as exc:
            e = exc.errors()[0]
            return RowError(row, ".".join(str(p) for p in e["loc"]) or None, str(e["msg"])[:300])
        prepared = Prepared(row=row, item=lookup, key=None)
        prepared.patch = body  # type: ignore[assignment]
        return prepared

    async def write(
        self, session: AsyncSession, prepared: list[Prepared]
    ) -> tuple[feedback_service.Ingested, list[RowError]]:
        errors: list[RowError] = []
        externals = {
            p.item["customer_external_id"] for p in prepared if "customer_external_id" in p.item
        }
        emails = {
            str(p.item["customer_email"]).lower() for p in prepared if "customer_email" in p.item
        }
        found: dict[tuple[str, str], str] = {}
        for name, values in (("external_id", externals), ("email", emails)):
            if values:
                column = getattr(Customer, name)
                rows = await session.execute(
                    sa.select(Customer.id, column).where(
                        Customer.tenant_id == self.actor.tenant_id,
                        Customer.deleted_at.is_(None),
                        column.in_(list(values)),
                    )
                )
                found.update({(name, value): cid for cid, value in rows.all()})
        items: list[tuple[int, FeedbackCreate]] = []
        for p in prepared:
            body = cast(FeedbackCreate, p.patch)
            if body.customer_id is None and p.item:
                name, value = next(iter(p.item.items()))
                key = (
                    ("external_id", value)
                    if name == "customer_external_id"
                    else ("email", str(value).lower())
                )
                if key not in found:
                    errors.append(RowError(p.row, name, "no customer has this " + key[0]))
                    continue
                body = body.model_copy(update={"customer_id": found[key]})
            items.append((p.row, body))
        done = await feedback_service.ingest(session, self.actor, self.settings, items)
        errors.extend(
            RowError(e.index, str(e.errors[0]["loc"][0]), str(e.errors[0]["msg"]))
            for e in done.errors
        )
        return done, errors


def _processor(
    runtime: Runtime, op: BulkOperation, actor: Principal
) -> CustomerImporter | FeedbackRows:
    options = op.options
    if op.resource == Resource.customers:
        return CustomerImporter(
            actor,
            PhonePolicy.from_settings(actor.tenant_settings or {}),
            ImportMode(op.mode or "create"),
            MatchOn(options.get("match_on", "auto")),
            dict(options.get("mapping", {})),
            dict(options.get("defaults", {})),
            copy_lines=runtime.settings.is_postgres,
        )
    return FeedbackRows(
        actor, runtime.settings, dict(options.get("mapping", {})), dict(options.get("defaults", {}))
    )


async def _failed_rows(db: Database, op: BulkOperation) -> set[int]:
    async with db.transaction(tenant_id=op.tenant_id, write=False) as session:
        rows = await session.execute(
            sa.select(BulkOperationError.row).where(BulkOperationError.operation_id == op.id)
        )
        return set(rows.scalars())


async def _run_import(
    runtime: Runtime, op: BulkOperation, actor: Principal, lost: asyncio.Event
) -> None:
    settings = runtime.settings
    processor = _processor(runtime, op, actor)
    storage = storage_for(settings)
    assert op.source_key is not None
    with (
        storage.fetch(op.source_key) as path,
        formats.opened_rows(path, _inspection(op), settings.bulk_max_uncompressed_bytes) as rows,
    ):
        checkpoint = op.checkpoint
        if checkpoint and isinstance(processor, CustomerImporter):
            failed = await _failed_rows(runtime.db, op)
            for number, values in rows:
                if number > checkpoint:
                    rows = _prepend((number, values), rows)
                    break
                if isinstance(values, dict) and values and number not in failed:
                    processor.remember(number, values)
        elif checkpoint:
            rows = (r for r in rows if r[0] > checkpoint)
        with full_collections_deferred():
            await _pipeline(runtime, op, processor, rows, checkpoint, lost)


def _writers(runtime: Runtime, processor: CustomerImporter | FeedbackRows) -> int:
    """How many chunks' transactions may be open at once.

    Two only where they cannot wait on each other: new customers (create mode) on
    PostgreSQL. A later chunk then never touches a row of an earlier one (keys repeated in
    the file are refused as duplicates before any write), so the only wait between them is
    the explicit one, later on earlier. An upsert can update one customer from two chunks
    (matched by external_id in one, by email in the other); a later chunk holding that row
    while waiting here for the earlier one, which waits in the database for the row, would
    wait forever. Feedback looks for near-duplicates among what is committed, so its chunks
    go one at a time; SQLite writes one transaction at a time anyway.
    """
    if (
        runtime.db.is_postgres
        and isinstance(processor, CustomerImporter)
        and processor.mode == ImportMode.create
    ):
        return 2
    return 1


async def _pipeline(
    runtime: Runtime,
    op: BulkOperation,
    processor: CustomerImporter | FeedbackRows,
    rows: Iterator[formats.Row],
    checkpoint: int,
    lost: asyncio.Event,
) -> None:
    """Read chunks here and commit them in tasks of their own, in order, with up to
    `_AHEAD` chunks read ahead of those being written (`_writers` of them at once)."""
    ready: asyncio.Queue[_Chunk | None] = asyncio.Queue(maxsize=_AHEAD)
    stop = False
    writers = _writers(runtime, processor)

    async def commit_in_order() -> None:
        expected = checkpoint
        earlier: asyncio.Task[int] | None = None
        writing: deque[asyncio.Task[int]] = deque()
        try:
            while True:
                # A chunk is taken off the queue only once it can be written (reading stays
                # `_AHEAD` chunks ahead); the oldest is awaited first, so its failure is the
                # one raised, and nothing begins after it.
                while writing and (len(writing) >= writers or writing[0].done()):
                    await writing.popleft()
                if (chunk := await ready.get()) is None or stop:
                    break
                while writing and writing[0].done():  # ended while the chunk was awaited
                    await writing.popleft()
                if lost.is_set():
                    raise LeaseLost
                earlier = asyncio.create_task(
                    _commit_chunk(runtime, op, processor, chunk, expected, after=earlier)
                )
                writing.append(earlier)
                expected = chunk.last
            while writing:
                await writing.popleft()
        finally:
            for task in writing:
                await let_finish(task)

    committer = asyncio.create_task(commit_in_order())

    async def hand_over(chunk: _Chunk | None) -> None:
        put = asyncio.ensure_future(ready.put(chunk))
        await asyncio.wait({put, committer}, return_when=asyncio.FIRST_COMPLETED)
        if not put.done():  # the committer failed: its error ends the import
            put.cancel()
            await committer

    try:
        while chunk := await _read_chunk(processor, rows, runtime.settings.bulk_chunk_rows):
            await hand_over(chunk)
        await hand_over(None)
        await committer
    finally:
        if not committer.done():  # reading failed: stop after the chunk being written
            stop = True
            if not ready.full():
                ready.put_nowait(None)
            await let_finish(committer)


def _prepend(first: formats.Row, rest: Iterator[formats.Row]) -> Iterator[formats.Row]:
    yield first
    yield from rest


@dataclass
class _Chunk:
    """A chunk of rows read, validated and staged: what its transaction writes."""

    prepared: list[Prepared] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    blank: int = 0
    rows: int = 0
    last: int = 0


async def _read_chunk(
    processor: CustomerImporter | FeedbackRows, rows: Iterator[formats.Row], size: int
) -> _Chunk | None:
    chunk = _Chunk()
    ids, now = IdRun("cus"), utcnow()
    # One pause for the whole chunk, not one per slice: each resume would collect.
    with gc_paused():
        while chunk.rows < size:
            piece = list(islice(rows, min(_SLICE_ROWS, size - chunk.rows)))
            if not piece:
                break
            prepared, errors, blank = split_rows(processor, piece)
            if isinstance(processor, CustomerImporter):
                processor.stage(prepared, ids, now)
            chunk.prepared.extend(prepared)
            chunk.errors.extend(errors)
            chunk.blank += blank
            chunk.rows += len(piece)
            chunk.last = piece[-1][0]
            await asyncio.sleep(0)  # the previous chunk's transaction goes on meanwhile
    return chunk if chunk.rows else None


def split_rows(
    processor: CustomerImporter | FeedbackRows, chunk: list[formats.Row]
) -> tuple[list[Prepared], list[RowError], int]:
    prepared: list[Prepared] = []
    errors: list[RowError] = []
    blank = 0
    for number, values in chunk:
        if isinstance(values, str):
            errors.append(RowError(number, None, values))
        elif not values:
            blank += 1
        else:
            outcome = processor.prepare(number, values)
            (errors if isinstance(outcome, RowError) else prepared).append(outcome)  # type: ignore[arg-type]
    return prepared, errors, blank


class _EarlierChunkFailed(Exception):
    """The chunk before this one did not commit: this one must not either."""


async def _commit_chunk(
    runtime: Runtime,
    op: BulkOperation,
    processor: CustomerImporter | FeedbackRows,
    chunk: _Chunk,
    checkpoint: int,
    *,
    after: asyncio.Task[int] | None = None,
) -> int:
    """One chunk's transaction. With `after` (the chunk before's, still being written), the
    rows are written meanwhile, and the rest (errors, checkpoint, then the events as the
    commit writes them) only once that one committed: chunks commit in file order, their
    events follow it, and the checkpoint never passes a chunk that is not there."""
    prepared, errors, blank, last = chunk.prepared, list(chunk.errors), chunk.blank, chunk.last
    created = updated = skipped = 0
    async with runtime.db.transaction(tenant_id=op.tenant_id) as session:
        if isinstance(processor, CustomerImporter):
            result = await processor.write(session, prepared)
            created, updated, skipped = result.created, result.updated, result.skipped
            errors.extend(result.errors)
        else:
            done, more = await processor.write(session, prepared)
            created = len(done.rows)
            errors.extend(more)
        if after is not None:
            await asyncio.wait({after})
            if after.cancelled() or after.exception() is not None:
                raise _EarlierChunkFailed  # rolls this chunk back too
        if errors:
            await session.execute(
                sa.insert(_ERRORS),
                [
                    {
                        "tenant_id": op.tenant_id,
                        "operation_id": op.id,
                        "row": e.row,
                        "field": e.field[:100] if e.field else None,
                        "reason": e.reason[:300],
                    }
                    for e in sorted(errors, key=lambda e: e.row)
                ],
            )
        moved = await session.execute(
            sa.update(BulkOperation)
            .where(
                BulkOperation.id == op.id,
                BulkOperation.lease_owner == WORKER_ID,
                BulkOperation.status == "running",
                BulkOperation.checkpoint == checkpoint,
            )
            .values(
                checkpoint=last,
                rows_processed=BulkOperation.rows_processed + chunk.rows,
                created=BulkOperation.created + created,
                updated=BulkOperation.updated + updated,
                skipped=BulkOperation.skipped + skipped + blank,
                failed=BulkOperation.failed + len({e.row for e in errors}),
                lease_expires_at=utcnow() + timedelta(seconds=runtime.settings.bulk_lease_seconds),
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            raise LeaseLost  # rolls the whole chunk back
    return last


async def preview(
    session: AsyncSession,
    actor: Principal,
    settings: Any,
    path: Path,
    inspection: formats.Inspection,
    total: int,
    resource: Resource,
    mode: ImportMode,
    match_on: MatchOn,
    column_mapping: dict[str, str],
    defaults: dict[str, Any],
) -> ImportPreview:
    """Validate every row as the import would, and match them; write nothing."""
    processor: CustomerImporter | FeedbackRows
    if resource == Resource.customers:
        processor = CustomerImporter(
            actor,
            PhonePolicy.from_settings(actor.tenant_settings or {}),
            mode,
            match_on,
            column_mapping,
            defaults,
        )
    else:
        processor = FeedbackRows(actor, settings, column_mapping, defaults)
    errors: list[RowError] = []
    valid = skipped = 0
    sample: list[dict[str, Any]] = []
    with formats.opened_rows(path, inspection, settings.bulk_max_uncompressed_bytes) as rows:
        while chunk := await _read_chunk(processor, rows, settings.bulk_chunk_rows):
            prepared = chunk.prepared
            errors.extend(chunk.errors)
            skipped += chunk.blank
            if isinstance(processor, CustomerImporter):
                result = await processor.write(session, prepared, dry_run=True)
                errors.extend(result.errors)
                valid += len(prepared) - len(result.errors)
                sample.extend(result.sample[: 10 - len(sample)])
            else:
                valid += len(prepared)
                sample.extend(
                    p.patch.model_dump(mode="json") for p in prepared[: 10 - len(sample)] if p.patch
                )
    errors.sort(key=lambda e: e.row)
    return ImportPreview(
        resource=resource,
        format=inspection.format.value,
        encoding=inspection.encoding,
        delimiter=inspection.delimiter,
        mapping=column_mapping,
        unmapped_columns=[h for h in inspection.headers if h not in column_mapping],
        total_rows=total,
        valid_rows=valid,
        failed_rows=len({e.row for e in errors}),
        skipped_rows=skipped,
        errors=[{"row": e.row, "field": e.field, "reason": e.reason} for e in errors[:100]],
        sample=sample,
    )


# -- exports ---------------------------------------------------------------------------------

_CUSTOMER_FILTERS = {
    "status",
    "customer_type",
    "company",
    "created_after",
    "created_before",
    "updated_since",
    "include_deleted",
    "tag",
    "q",
}
_FEEDBACK_FILTERS = {
    "customer_id",
    "feedback_type",
    "status",
    "source",
    "sentiment",
    "rating",
    "min_rating",
    "max_rating",
    "received_after",
    "received_before",
    "tag",
    "q",
    "duplicates",
}


def export_statement(
    session: AsyncSession, tenant_id: str, resource: Resource, filters: dict[str, Any]
) -> sa.Select[Any]:
    from pydantic import TypeAdapter

    allowed = _CUSTOMER_FILTERS if resource == Resource.customers else _FEEDBACK_FILTERS
    unknown = sorted(set(filters) - allowed)
    if unknown:
        raise InvalidInput(
            f"Unknown filters {', '.join(unknown)}; filters are {', '.join(sorted(allowed))}",
            errors=[
                {"loc": ["body", "filters", name], "msg": "unknown filter"} for name in unknown
            ],
        )
    typed: dict[str, Any] = {}
    for name, value in filters.items():
        kind: Any = str
        if name.endswith(("_after", "_before", "_since")):
            from pydantic import AwareDatetime

            kind = AwareDatetime
        elif name in ("rating", "min_rating", "max_rating"):
            kind = int
        elif name in ("include_deleted", "duplicates"):
            kind = bool
        try:
            typed[name] = TypeAdapter(kind).validate_python(value)
        except ValidationError:
            raise InvalidInput(
                f"The filter {name} is not valid",
                errors=[{"loc": ["body", "filters", name], "msg": "invalid value"}],
            ) from None
    if resource == Resource.customers:
        return CustomerRepository(session, tenant_id).list_statement(**typed)
    return FeedbackRepository(session, tenant_id).list_statement(**typed)


async def _run_export(
    runtime: Runtime, op: BulkOperation, actor: Principal, lost: asyncio.Event
) -> None:
    del actor
    storage = storage_for(runtime.settings)
    fields = list(op.options["fields"])
    model: Any = Customer if op.resource == Resource.customers else Feedback
    assert op.result_key is not None
    exported = 0
    with storage.writer(op.result_key) as tmp:
        writer = Writer(ExportFormat(op.format), tmp, fields)
        last_id = ""
        while True:
            if lost.is_set():
                raise LeaseLost
            async with runtime.db.transaction(tenant_id=op.tenant_id, write=False) as session:
                stmt = export_statement(
                    session, op.tenant_id, Resource(op.resource), op.options["filters"]
                )
                if op.total_rows is None and not last_id:
                    total = (
                        await session.execute(
                            sa.select(sa.func.count()).select_from(stmt.subquery())
                        )
                    ).scalar_one()
                    op.total_rows = int(total)
                page = list(
                    (
                        await session.execute(
                            stmt.where(model.id > last_id).order_by(model.id).limit(1000)
                        )
                    ).scalars()
                )
            if not page:
                break
            writer.write(record(obj, fields) for obj in page)
            exported += len(page)
            last_id = page[-1].id
            await _progress(runtime.db, op, exported)
        writer.close()


async def _progress(db: Database, op: BulkOperation, exported: int) -> None:
    async with db.transaction(tenant_id=op.tenant_id) as session:
        moved = await session.execute(
            sa.update(BulkOperation)
            .where(
                BulkOperation.id == op.id,
                BulkOperation.lease_owner == WORKER_ID,
                BulkOperation.status == "running",
            )
            .values(rows_processed=exported, total_rows=op.total_rows, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            raise LeaseLost


async def recover(runtime: Runtime) -> int:
    """Operations nobody is running: queued ones never taken, running ones whose worker
    stopped renewing its lease. Each is queued again in one transaction; claiming it is
    idempotent, and a job already waiting for it is not queued twice."""
    now = utcnow()
    async with runtime.db.transaction(system=True) as session:
        ids = list(
            (
                await session.execute(
                    sa.select(BulkOperation.id).where(
                        sa.or_(
                            sa.and_(
                                BulkOperation.status == "queued",
                                BulkOperation.created_at < now - timedelta(seconds=5),
                            ),
                            sa.and_(
                                BulkOperation.status == "running",
                                BulkOperation.lease_expires_at < now,
                            ),
                        )
                    )
                )
            ).scalars()
        )
        for operation_id in ids:
            queue_run(session, operation_id)
    return len(ids)


__all__ = ["OperationStatus", "claim", "preview", "recover", "run"]
