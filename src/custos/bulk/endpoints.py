from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Form, Query, Response, UploadFile
from fastapi.responses import StreamingResponse

from custos.auth.dependencies import BulkRead, BulkWrite, RuntimeDep, TenantSession
from custos.bulk import mapping, runner, service
from custos.bulk.formats import safe_file_name
from custos.bulk.schemas import (
    BulkOperation,
    ExportRequest,
    ImportMode,
    ImportPreview,
    MatchOn,
    OperationStatus,
    Resource,
)
from custos.bulk.storage import storage_for
from custos.bulk.uploads import format_of, received
from custos.exceptions import Conflict, NotFound
from custos.kit.pagination import Cursor, Limit, Page, keyset_page
from custos.kit.routing import CustosRouter
from custos.models import BulkOperation as BulkOperationModel

router = CustosRouter(prefix="/bulk", tags=["bulk"])


@router.post(
    "/import",
    response_model=BulkOperation | ImportPreview,
    status_code=202,
    summary="Import customers or feedback from a file, as a background job",
    description=(
        "Multipart: `file`, `resource`, `mode` (create, update, upsert), `match_on` (auto: id,"
        " then external_id, then email), `mapping` (JSON: column -> field; default from the"
        " headers), `defaults` (JSON: field -> value for empty cells), `format` (default from"
        " the file name). `?dry_run=true` validates every row and writes nothing (200)."
    ),
    responses={200: {"model": ImportPreview, "description": "The dry run's preview"}},
)
async def start_import(
    response: Response,
    file: UploadFile,
    auth: BulkWrite,
    session: TenantSession,
    runtime: RuntimeDep,
    resource: Annotated[Resource, Form()],
    mode: Annotated[ImportMode, Form()] = ImportMode.create,
    match_on: Annotated[MatchOn, Form()] = MatchOn.auto,
    column_mapping: Annotated[str | None, Form(alias="mapping", max_length=20_000)] = None,
    defaults: Annotated[str | None, Form(max_length=20_000)] = None,
    file_format: Annotated[str | None, Form(alias="format", max_length=10)] = None,
    dry_run: Annotated[bool, Query(description="Validate and preview; write nothing")] = False,
) -> BulkOperation | ImportPreview:
    settings = runtime.settings
    service.check_import_request(resource, mode, match_on)
    explicit = mapping.parse_json_object(column_mapping, "mapping")
    default_values = mapping.check_defaults(
        resource, mapping.parse_json_object(defaults, "defaults")
    )
    fmt = format_of(file, file_format)
    async with received(file, settings.bulk_max_upload_bytes) as path:
        inspection, total = service.inspect_upload(settings, path, fmt)
        resolved = mapping.resolve(resource, inspection.headers, explicit)
        if dry_run:
            response.status_code = 200
            return await runner.preview(
                session,
                auth,
                settings,
                path,
                inspection,
                total,
                resource,
                mode,
                match_on,
                resolved,
                default_values,
            )
        op = await service.start_import(
            session,
            auth,
            storage_for(settings),
            path=path,
            file_name=safe_file_name(file.filename),
            inspection=inspection,
            total_rows=total,
            resource=resource,
            mode=mode,
            match_on=match_on,
            column_mapping=resolved,
            defaults=default_values,
        )
    response.headers["Location"] = f"/api/v1/bulk/operations/{op.id}"
    return service.to_api(op)


@router.post(
    "/export",
    response_model=BulkOperation,
    status_code=202,
    summary="Export customers or feedback to a file, as a background job",
)
async def start_export(
    body: ExportRequest,
    auth: BulkWrite,
    session: TenantSession,
    response: Response,
) -> BulkOperation:
    op = await service.start_export(session, auth, body)
    response.headers["Location"] = f"/api/v1/bulk/operations/{op.id}"
    return service.to_api(op)


@router.get(
    "/operations", response_model=Page[BulkOperation], summary="Imports and exports, newest first"
)
async def list_operations(
    auth: BulkRead,
    session: TenantSession,
    limit: Limit = 50,
    cursor: Cursor = None,
    kind: Annotated[str | None, Query(pattern="^(import|export)$")] = None,
    status: OperationStatus | None = None,
    resource: Resource | None = None,
) -> Page[BulkOperation]:
    stmt = service.list_statement(
        auth.tenant_id,
        kind=kind,
        status=status.value if status else None,
        resource=resource.value if resource else None,
    )
    items, next_cursor = await keyset_page(
        session, stmt, BulkOperationModel.id, limit=limit, cursor=cursor
    )
    return Page[BulkOperation](items=[service.to_api(op) for op in items], next_cursor=next_cursor)


@router.get(
    "/operations/{operation_id}", response_model=BulkOperation, summary="Progress of one operation"
)
async def get_operation(operation_id: str, auth: BulkRead, session: TenantSession) -> BulkOperation:
    return service.to_api(await service.get(session, auth, operation_id))


@router.get(
    "/operations/{operation_id}/errors",
    summary="The rejected rows as CSV: row, field, reason",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def operation_errors(operation_id: str, auth: BulkRead, session: TenantSession) -> Response:
    await service.get(session, auth, operation_id)  # 404 before the stream starts
    rows = [r async for r in service.error_rows(session, auth, operation_id)]

    async def body() -> AsyncIterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(["row", "field", "reason"])
        for start in range(0, len(rows), 1000):
            for row, field, reason in rows[start : start + 1000]:
                writer.writerow([row, field or "", reason])
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
        if buffer.tell():
            yield buffer.getvalue().encode()

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{operation_id}-errors.csv"'},
    )


@router.post(
    "/operations/{operation_id}/cancel",
    response_model=BulkOperation,
    summary="Cancel: stops after the chunk in progress; what was committed stays",
)
async def cancel_operation(
    operation_id: str, auth: BulkWrite, session: TenantSession
) -> BulkOperation:
    return service.to_api(await service.cancel(session, auth, operation_id))


_MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@router.get(
    "/operations/{operation_id}/download",
    summary="The exported file",
    response_class=StreamingResponse,
    responses={200: {"content": {media: {} for media in _MEDIA.values()}}},
)
async def download_export(
    operation_id: str, auth: BulkRead, session: TenantSession, runtime: RuntimeDep
) -> Response:
    op = await service.get(session, auth, operation_id)
    if op.kind != "export":
        raise NotFound("Only exports have a file to download")
    if op.status != OperationStatus.completed or op.result_key is None:
        raise Conflict(f"The export is {op.status}; its file is there once it completes")
    storage = storage_for(runtime.settings)
    try:
        size = storage.size(op.result_key)
    except FileNotFoundError:
        raise NotFound("The export's file is no longer there") from None
    return StreamingResponse(
        storage.iter_bytes(op.result_key),
        media_type=_MEDIA[op.format],
        headers={
            "Content-Disposition": f'attachment; filename="{op.resource}-{op.id}.{op.format}"',
            "Content-Length": str(size),
        },
    )
