"""Bulk operations: starting imports and exports, reading their progress, cancelling."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from custos import events
from custos.audit import service as audit
from custos.auth.principal import Principal
from custos.bulk import formats
from custos.bulk.exporter import check_fields
from custos.bulk.schemas import (
    FINISHED,
    ExportRequest,
    ImportMode,
    MatchOn,
    OperationStatus,
    Resource,
)
from custos.bulk.schemas import (
    BulkOperation as BulkOperationOut,
)
from custos.bulk.storage import Storage
from custos.config import Settings
from custos.event import service as event_log
from custos.exceptions import Conflict, InvalidInput, NotFound, PayloadTooLarge
from custos.kit.context import request_context
from custos.kit.ids import new_id
from custos.kit.time import utcnow
from custos.models import BulkOperation, BulkOperationError
from custos.worker.defer import defer


def to_api(op: BulkOperation) -> BulkOperationOut:
    now = utcnow()
    percent = rate = eta = None
    if op.total_rows:
        percent = round(100 * min(op.rows_processed, op.total_rows) / op.total_rows, 2)
    elif op.status == OperationStatus.completed:
        percent = 100.0
    if op.started_at is not None and op.rows_processed:
        elapsed = ((op.finished_at or now) - op.started_at).total_seconds()
        if elapsed > 0:
            rate = round(op.rows_processed / elapsed, 1)
            if op.total_rows and op.status not in FINISHED:
                eta = round(max(op.total_rows - op.rows_processed, 0) / rate, 1)
    download = None
    if op.kind == "export" and op.status == OperationStatus.completed:
        download = f"/api/v1/bulk/operations/{op.id}/download"
    return BulkOperationOut(
        id=op.id,
        kind=op.kind,
        resource=Resource(op.resource),
        format=op.format,
        mode=ImportMode(op.mode) if op.mode else None,
        status=OperationStatus(op.status),
        file_name=op.file_name,
        options={k: v for k, v in op.options.items() if not k.startswith("_")},
        total_rows=op.total_rows,
        rows_processed=op.rows_processed,
        created=op.created,
        updated=op.updated,
        skipped=op.skipped,
        failed=op.failed,
        percent=percent,
        rows_per_second=rate,
        eta_seconds=eta,
        attempts=op.attempts,
        error=op.error,
        download_url=download,
        created_at=op.created_at,
        started_at=op.started_at,
        finished_at=op.finished_at,
    )


def _new_operation(actor: Principal, **values: Any) -> BulkOperation:
    return BulkOperation(
        id=new_id("blk"),
        tenant_id=actor.tenant_id,
        status=OperationStatus.queued.value,
        actor_type=actor.kind.value,
        actor_id=actor.id,
        request_id=request_context.get().request_id,
        checkpoint=0,
        rows_processed=0,
        created=0,
        updated=0,
        skipped=0,
        failed=0,
        attempts=0,
        **values,
    )


def queue_run(session: AsyncSession, operation_id: str) -> None:
    """Queue the `bulk.run` job in the operation's own transaction: the job exists exactly
    when the operation row does. The queueing lock keeps one waiting job per operation."""
    defer(session, "bulk.run", queueing_lock=f"bulk:{operation_id}", operation_id=operation_id)


def check_import_request(resource: Resource, mode: ImportMode, match_on: MatchOn) -> None:
    if resource == Resource.feedback and mode != ImportMode.create:
        raise InvalidInput(
            "Feedback is imported with mode=create only",
            errors=[{"loc": ["body", "mode"], "msg": "feedback takes create"}],
        )
    if mode == ImportMode.create and match_on != MatchOn.auto:
        raise InvalidInput(
            "match_on applies to update and upsert",
            errors=[{"loc": ["body", "match_on"], "msg": "only with update or upsert"}],
        )


def inspect_upload(
    settings: Settings, path: Path, fmt: formats.FileFormat
) -> tuple[formats.Inspection, int]:
    """Refuse what cannot be imported before anything is stored: unreadable files, too
    many rows."""
    inspection, total = formats.survey(path, fmt, settings.bulk_max_uncompressed_bytes)
    if total > settings.bulk_max_rows:
        raise PayloadTooLarge(
            f"The file has {total} rows; at most {settings.bulk_max_rows} are imported at once"
        )
    return inspection, total


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1_048_576):
            digest.update(chunk)
    return digest.hexdigest()


async def start_import(
    session: AsyncSession,
    actor: Principal,
    storage: Storage,
    *,
    path: Path,
    file_name: str,
    inspection: formats.Inspection,
    total_rows: int,
    resource: Resource,
    mode: ImportMode,
    match_on: MatchOn,
    column_mapping: dict[str, str],
    defaults: dict[str, Any],
) -> BulkOperation:
    op = _new_operation(
        actor,
        kind="import",
        resource=resource.value,
        format=inspection.format.value,
        mode=mode.value,
        file_name=file_name,
        total_rows=total_rows,
        options={
            "mapping": column_mapping,
            "defaults": defaults,
            "match_on": match_on.value,
            "encoding": inspection.encoding,
            "delimiter": inspection.delimiter,
            "_headers": inspection.headers,
        },
    )
    op.source_key = f"imports/{actor.tenant_id}/{op.id}/source.{inspection.format.value}"
    op.size_bytes = storage.save(op.source_key, path)
    session.add(op)
    await session.flush()
    audit.record(
        session,
        actor,
        "bulk.import_started",
        "bulk_operation",
        op.id,
        changes={
            "resource": {"from": None, "to": op.resource},
            "mode": {"from": None, "to": op.mode},
            "format": {"from": None, "to": op.format},
            "total_rows": {"from": None, "to": total_rows},
        },
    )
    queue_run(session, op.id)
    return op


async def start_export(
    session: AsyncSession, actor: Principal, body: ExportRequest
) -> BulkOperation:
    fields = check_fields(body.resource, body.fields)
    from custos.bulk.runner import export_statement  # the filters are checked where applied

    export_statement(session, actor.tenant_id, body.resource, body.filters)
    op = _new_operation(
        actor,
        kind="export",
        resource=body.resource.value,
        format=body.format.value,
        mode=None,
        options={"fields": fields, "filters": body.filters},
    )
    op.result_key = f"exports/{actor.tenant_id}/{op.id}/{op.resource}.{op.format}"
    session.add(op)
    await session.flush()
    audit.record(
        session,
        actor,
        "bulk.export_started",
        "bulk_operation",
        op.id,
        changes={
            "resource": {"from": None, "to": op.resource},
            "format": {"from": None, "to": op.format},
        },
    )
    queue_run(session, op.id)
    return op


async def get(session: AsyncSession, actor: Principal, operation_id: str) -> BulkOperation:
    op = (
        await session.execute(
            sa.select(BulkOperation).where(
                BulkOperation.tenant_id == actor.tenant_id, BulkOperation.id == operation_id
            )
        )
    ).scalar_one_or_none()
    if op is None:
        raise NotFound("No such bulk operation")
    return op


def list_statement(
    tenant_id: str, *, kind: str | None, status: str | None, resource: str | None
) -> sa.Select[tuple[BulkOperation]]:
    stmt = sa.select(BulkOperation).where(BulkOperation.tenant_id == tenant_id)
    for column, value in (
        (BulkOperation.kind, kind),
        (BulkOperation.status, status),
        (BulkOperation.resource, resource),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    return stmt


def completed_event(session: AsyncSession, actor: Principal | None, op: BulkOperation) -> None:
    event_log.emit(
        session,
        actor,
        events.BULK_COMPLETED,
        {"operation": to_api(op).model_dump(mode="json")},
        subject_type="bulk_operation",
        subject_id=op.id,
        tenant_id=op.tenant_id,
    )


async def cancel(session: AsyncSession, actor: Principal, operation_id: str) -> BulkOperation:
    """Stops the operation after the chunk in progress: committed chunks stay, and the
    counters and error report say exactly what they hold."""
    op = await get(session, actor, operation_id)
    if op.status in FINISHED:
        raise Conflict(f"The operation is already {op.status}")
    op.status = OperationStatus.cancelled.value
    op.finished_at = utcnow()
    op.lease_owner = None
    op.lease_expires_at = None
    await session.flush()
    audit.record(
        session,
        actor,
        "bulk.cancelled",
        "bulk_operation",
        op.id,
        changes={"status": {"from": "running", "to": "cancelled"}},
    )
    completed_event(session, actor, op)
    return op


async def error_rows(
    session: AsyncSession, actor: Principal, operation_id: str
) -> AsyncIterator[tuple[int, str | None, str]]:
    op = await get(session, actor, operation_id)
    stmt = (
        sa.select(BulkOperationError.row, BulkOperationError.field, BulkOperationError.reason)
        .where(
            BulkOperationError.tenant_id == actor.tenant_id,
            BulkOperationError.operation_id == op.id,
        )
        .order_by(BulkOperationError.row, BulkOperationError.id)
    )
    result = await session.stream(stmt.execution_options(yield_per=1000))
    async for row, field, reason in result:
        yield row, field, reason
