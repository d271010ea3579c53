from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from custos.kit.schemas import Schema


class Resource(StrEnum):
    customers = "customers"
    feedback = "feedback"


class ImportMode(StrEnum):
    create = "create"
    update = "update"
    upsert = "upsert"


class MatchOn(StrEnum):
    auto = "auto"
    id = "id"
    external_id = "external_id"
    email = "email"


class ExportFormat(StrEnum):
    csv = "csv"
    json = "json"
    xlsx = "xlsx"


class OperationStatus(StrEnum):
    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


FINISHED = frozenset({OperationStatus.completed, OperationStatus.failed, OperationStatus.cancelled})


class BulkOperation(Schema):
    id: str
    kind: str = Field(description="import or export")
    resource: Resource
    format: str
    mode: ImportMode | None
    status: OperationStatus
    file_name: str | None
    options: dict[str, Any]
    total_rows: int | None
    rows_processed: int
    created: int
    updated: int
    skipped: int
    failed: int
    percent: float | None = Field(description="Rows processed out of total_rows, 0 to 100")
    rows_per_second: float | None
    eta_seconds: float | None
    attempts: int
    error: str | None
    download_url: str | None = None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ExportRequest(Schema):
    resource: Resource
    format: ExportFormat = ExportFormat.csv
    fields: list[str] | None = Field(
        None, max_length=100, description="Columns to write, in order; default: all"
    )
    filters: dict[str, Any] = Field(
        default_factory=dict,
        description='The list endpoint\'s filters, e.g. {"status": "active", "tag": "vip"}',
    )


class ImportPreview(Schema):
    """`?dry_run=true`: what the import would do. Nothing was written."""

    resource: Resource
    format: str
    encoding: str | None
    delimiter: str | None
    mapping: dict[str, str] = Field(description="Column -> field, as the import would use it")
    unmapped_columns: list[str]
    total_rows: int
    valid_rows: int
    failed_rows: int
    skipped_rows: int
    errors: list[dict[str, Any]] = Field(description="The first 100 problems")
    sample: list[dict[str, Any]] = Field(description="The first rows, as they would be written")


EXAMPLE_BULK_OPERATION = BulkOperation.model_validate(
    {
        "id": "blk_01KAY2E5F7G9H1J3K5M7N9P1Q3",
        "kind": "import",
        "resource": "customers",
        "format": "csv",
        "mode": "upsert",
        "status": "completed",
        "file_name": "customers.csv",
        "options": {"match_on": "auto"},
        "total_rows": 100000,
        "rows_processed": 100000,
        "created": 97500,
        "updated": 500,
        "skipped": 0,
        "failed": 2000,
        "percent": 100.0,
        "rows_per_second": 9718.0,
        "eta_seconds": 0.0,
        "attempts": 1,
        "error": None,
        "created_at": "2026-11-22T08:00:00Z",
        "started_at": "2026-11-22T08:00:01Z",
        "finished_at": "2026-11-22T08:00:11Z",
    }
)


class BulkCompletedPayload(Schema):
    """The `bulk.completed` event's payload."""

    operation: BulkOperation
