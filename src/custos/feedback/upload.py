"""Feedback files uploaded to the feedback endpoints: read, mapped and ingested in the
request, with a per-row report. Larger files go through a bulk import."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from custos.audit import service as audit
from custos.auth.principal import Principal
from custos.bulk import formats, mapping
from custos.bulk.customers import RowError
from custos.bulk.runner import FeedbackRows, split_rows
from custos.bulk.schemas import Resource
from custos.config import Settings
from custos.exceptions import PayloadTooLarge
from custos.feedback.schemas import IngestResult, ItemError


async def ingest_file(
    session: AsyncSession, actor: Principal, settings: Settings, path: Path, fmt: formats.FileFormat
) -> IngestResult:
    inspection, reader = formats.read(path, fmt, settings.bulk_max_uncompressed_bytes)
    rows = list(reader)
    if len(rows) > settings.feedback_upload_max_rows:
        raise PayloadTooLarge(
            f"The file has {len(rows)} rows; upload at most {settings.feedback_upload_max_rows}"
            " here, or use POST /api/v1/bulk/import"
        )
    processor = FeedbackRows(
        actor, settings, mapping.automatic(Resource.feedback, inspection.headers), {}
    )
    prepared, errors, _ = split_rows(processor, rows)
    done, more = await processor.write(session, prepared)
    errors = sorted([*errors, *more], key=lambda e: e.row)
    if done.rows:
        audit.record(
            session,
            actor,
            "feedback.uploaded",
            "feedback",
            None,
            changes={
                "format": {"from": None, "to": fmt.value},
                "created": {"from": None, "to": len(done.rows)},
                "duplicates": {"from": None, "to": done.duplicates},
                "failed": {"from": None, "to": len(errors)},
            },
        )
    return IngestResult(
        created=len(done.rows),
        duplicates=done.duplicates,
        failed=len({e.row for e in errors}),
        ids=[r["id"] for r in done.rows],
        errors=[_item(e) for e in errors],
    )


def _item(error: RowError) -> ItemError:
    return ItemError(
        index=error.row, errors=[{"loc": [error.field] if error.field else [], "msg": error.reason}]
    )
