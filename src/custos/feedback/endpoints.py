from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Query, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from custos.auth.dependencies import FeedbackRead, FeedbackWrite, RuntimeDep, TenantSession
from custos.bulk.formats import FileFormat
from custos.bulk.uploads import received
from custos.feedback import service, upload
from custos.feedback.repository import FeedbackRepository
from custos.feedback.schemas import (
    Feedback,
    FeedbackBatch,
    FeedbackCreate,
    FeedbackPatch,
    FeedbackSource,
    FeedbackStats,
    FeedbackStatus,
    FeedbackType,
    IngestResult,
    SentimentLabel,
)
from custos.kit.idempotency import Idempotency, IdempotencyKeyHeader, fingerprint
from custos.kit.pagination import Cursor, Limit, Page, keyset_page
from custos.kit.routing import CustosRouter
from custos.models import Feedback as FeedbackModel

router = CustosRouter(prefix="/feedback", tags=["feedback"])

IfMatch = Annotated[
    str | None, Header(max_length=200, description="The ETag you read; a stale one gets 412")
]


@router.post("", response_model=Feedback, status_code=201, summary="Submit feedback")
async def create_feedback(
    body: FeedbackCreate,
    auth: FeedbackWrite,
    session: TenantSession,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    idempotency = None
    if idempotency_key:
        print_ = fingerprint("POST", "/feedback", body.model_dump(mode="json"))
        idempotency = Idempotency(session, auth, idempotency_key, print_)
        stored = await idempotency.replay()
        if stored is not None:
            return JSONResponse(stored.response, stored.status_code, headers=stored.headers)
    row = await service.create(session, auth, runtime.settings, body)
    content = service.to_api(row)
    headers = {
        "ETag": f'"{row["id"]}.{row["version"]}"',
        "Location": f"/api/v1/feedback/{row['id']}",
    }
    if idempotency is not None:
        await idempotency.remember(201, content, headers)
    return JSONResponse(content, 201, headers=headers)


@router.post(
    "/batch",
    response_model=IngestResult,
    summary="Submit up to 1,000 items; invalid ones are reported by index, the rest stored",
)
async def batch_feedback(
    body: FeedbackBatch, auth: FeedbackWrite, session: TenantSession, runtime: RuntimeDep
) -> IngestResult:
    items = list(enumerate(body.items))
    return await service.create_many(
        session, auth, runtime.settings, items, action="feedback.batch_created"
    )


async def _upload(
    file: UploadFile, fmt: FileFormat, auth: Any, session: Any, runtime: Any
) -> IngestResult:
    settings = runtime.settings
    async with received(file, settings.bulk_max_upload_bytes) as path:
        return await upload.ingest_file(session, auth, settings, path, fmt)


_UPLOAD_DOC = (
    "A file of feedback (multipart field `file`), columns mapped from the headers;"
    " problems reported by row number (the header is row 1)"
)


@router.post(
    "/upload/json",
    response_model=IngestResult,
    summary="Upload a JSON array",
    description=_UPLOAD_DOC,
)
async def upload_json(
    file: UploadFile, auth: FeedbackWrite, session: TenantSession, runtime: RuntimeDep
) -> IngestResult:
    return await _upload(file, FileFormat.json, auth, session, runtime)


@router.post(
    "/upload/csv", response_model=IngestResult, summary="Upload a CSV file", description=_UPLOAD_DOC
)
async def upload_csv(
    file: UploadFile, auth: FeedbackWrite, session: TenantSession, runtime: RuntimeDep
) -> IngestResult:
    return await _upload(file, FileFormat.csv, auth, session, runtime)


@router.post(
    "/upload/xlsx",
    response_model=IngestResult,
    summary="Upload an XLSX workbook",
    description=_UPLOAD_DOC,
)
async def upload_xlsx(
    file: UploadFile, auth: FeedbackWrite, session: TenantSession, runtime: RuntimeDep
) -> IngestResult:
    return await _upload(file, FileFormat.xlsx, auth, session, runtime)


class _Filters:
    def __init__(
        self,
        customer_id: Annotated[str | None, Query(max_length=40)] = None,
        feedback_type: FeedbackType | None = None,
        status: FeedbackStatus | None = None,
        source: FeedbackSource | None = None,
        sentiment: SentimentLabel | None = None,
        rating: Annotated[int | None, Query(ge=1, le=5)] = None,
        min_rating: Annotated[int | None, Query(ge=1, le=5)] = None,
        max_rating: Annotated[int | None, Query(ge=1, le=5)] = None,
        received_after: AwareDatetime | None = None,
        received_before: AwareDatetime | None = None,
        tag: Annotated[str | None, Query(max_length=50)] = None,
        q: Annotated[
            str | None,
            Query(min_length=1, max_length=200, description="Words in subject or content"),
        ] = None,
        duplicates: Annotated[bool | None, Query(description="Only (or no) duplicates")] = None,
    ) -> None:
        self.values: dict[str, Any] = {
            "customer_id": customer_id,
            "feedback_type": feedback_type.value if feedback_type else None,
            "status": status.value if status else None,
            "source": source.value if source else None,
            "sentiment": sentiment.value if sentiment else None,
            "rating": rating,
            "min_rating": min_rating,
            "max_rating": max_rating,
            "received_after": received_after,
            "received_before": received_before,
            "tag": tag,
            "q": q,
            "duplicates": duplicates,
        }


Filters = Annotated[_Filters, Depends()]


@router.get("", response_model=Page[Feedback], summary="List feedback, newest first")
async def list_feedback(
    auth: FeedbackRead,
    session: TenantSession,
    filters: Filters,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[Feedback]:
    stmt = FeedbackRepository(session, auth.tenant_id).list_statement(**filters.values)
    items, next_cursor = await keyset_page(
        session, stmt, FeedbackModel.id, limit=limit, cursor=cursor
    )
    return Page[Feedback](
        items=[Feedback.model_validate(i) for i in items], next_cursor=next_cursor
    )


@router.get(
    "/stats", response_model=FeedbackStats, summary="Counts, sentiment, ratings, daily trend"
)
async def feedback_stats(
    auth: FeedbackRead,
    session: TenantSession,
    filters: Filters,
    days: Annotated[int, Query(ge=1, le=366, description="Days in the daily trend")] = 30,
) -> FeedbackStats:
    repo = FeedbackRepository(session, auth.tenant_id)
    return FeedbackStats.model_validate(
        await repo.stats(repo.list_statement(**filters.values), days)
    )


@router.get("/{feedback_id}", response_model=Feedback, summary="Get feedback (with its ETag)")
async def get_feedback(
    feedback_id: str, auth: FeedbackRead, session: TenantSession, response: Response
) -> FeedbackModel:
    item = await service.get(session, auth, feedback_id)
    response.headers["ETag"] = service.etag(item)
    return item


@router.patch("/{feedback_id}", response_model=Feedback, summary="Triage: status and tags")
async def patch_feedback(
    feedback_id: str,
    body: FeedbackPatch,
    auth: FeedbackWrite,
    session: TenantSession,
    response: Response,
    if_match: IfMatch = None,
) -> FeedbackModel:
    item = await service.patch(session, auth, feedback_id, body, if_match)
    response.headers["ETag"] = service.etag(item)
    return item
