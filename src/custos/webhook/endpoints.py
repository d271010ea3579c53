from __future__ import annotations

from typing import Annotated

from fastapi import Header, Query, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from custos.auth.dependencies import RuntimeDep, TenantSession, WebhooksRead, WebhooksWrite
from custos.kit.etag import etag
from custos.kit.idempotency import IdempotencyKeyHeader, begin
from custos.kit.pagination import Cursor, Limit, Page, keyset_page
from custos.kit.routing import CustosRouter
from custos.models import WebhookDelivery, WebhookEndpoint
from custos.webhook import service
from custos.webhook.repository import WebhookRepository
from custos.webhook.schemas import (
    Attempt,
    Delivery,
    DeliveryStatus,
    DeliveryWithAttempts,
    ReplayRequest,
    ReplayResult,
    Webhook,
    WebhookCreate,
    WebhookRotate,
    WebhookTest,
    WebhookUpdate,
    WebhookWithSecret,
)

router = CustosRouter(prefix="/webhooks", tags=["webhooks"])

IfMatch = Annotated[
    str | None, Header(max_length=200, description="The ETag you read; a stale one gets 412")
]


def _with_secret(issued: service.IssuedSecret) -> WebhookWithSecret:
    return WebhookWithSecret(**service.present(issued.endpoint).model_dump(), secret=issued.secret)


def _delivery(row: WebhookDelivery) -> Delivery:
    trigger = "event" if row.batch == "" else "test" if row.batch == "test" else "replay"
    return Delivery(
        id=row.id,
        endpoint_id=row.endpoint_id,
        event_id=row.event_id,
        event_type=row.event_type,
        trigger=trigger,
        replay_id=row.batch if trigger == "replay" else None,
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_attempt_at=row.last_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        succeeded_at=row.succeeded_at,
        created_at=row.created_at,
    )


@router.post(
    "",
    response_model=WebhookWithSecret,
    status_code=201,
    summary="Add a webhook endpoint (its signing secret is shown once)",
)
async def create_webhook(
    body: WebhookCreate,
    auth: WebhooksWrite,
    session: TenantSession,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    idempotency, replayed = await begin(
        session, auth, idempotency_key, "/webhooks", body.model_dump(mode="json")
    )
    if replayed is not None:
        return replayed
    issued = await service.create(runtime, session, auth, body)
    content = _with_secret(issued).model_dump(mode="json")
    headers = {"ETag": etag(issued.endpoint), "Location": f"/api/v1/webhooks/{issued.endpoint.id}"}
    if idempotency is not None:
        # The replayed answer must not hand the secret out again.
        await idempotency.remember(201, {**content, "secret": None}, headers)
    return JSONResponse(content, 201, headers=headers)


@router.get("", response_model=Page[Webhook], summary="List webhook endpoints, newest first")
async def list_webhooks(
    auth: WebhooksRead,
    session: TenantSession,
    limit: Limit = 50,
    cursor: Cursor = None,
    enabled: bool | None = None,
) -> Page[Webhook]:
    stmt = WebhookRepository(session, auth.tenant_id).list_statement(enabled=enabled)
    items, next_cursor = await keyset_page(
        session, stmt, WebhookEndpoint.id, limit=limit, cursor=cursor
    )
    return Page[Webhook](items=[service.present(e) for e in items], next_cursor=next_cursor)


@router.get("/{webhook_id}", response_model=Webhook, summary="One webhook endpoint")
async def get_webhook(
    webhook_id: str, auth: WebhooksRead, session: TenantSession, response: Response
) -> Webhook:
    endpoint = await service.get(session, auth, webhook_id)
    response.headers["ETag"] = etag(endpoint)
    return service.present(endpoint)


@router.patch(
    "/{webhook_id}",
    response_model=Webhook,
    summary="Change a webhook endpoint; `enabled: true` re-enables a disabled one",
)
async def update_webhook(
    webhook_id: str,
    body: WebhookUpdate,
    auth: WebhooksWrite,
    session: TenantSession,
    runtime: RuntimeDep,
    response: Response,
    if_match: IfMatch = None,
) -> Webhook:
    endpoint = await service.update(runtime, session, auth, webhook_id, body, if_match)
    response.headers["ETag"] = etag(endpoint)
    return service.present(endpoint)


@router.delete(
    "/{webhook_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a webhook endpoint and its delivery log",
)
async def delete_webhook(webhook_id: str, auth: WebhooksWrite, session: TenantSession) -> Response:
    await service.delete(session, auth, webhook_id)
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/rotate-secret",
    response_model=WebhookWithSecret,
    summary="A new signing secret; messages carry both signatures for the grace period",
)
async def rotate_secret(
    webhook_id: str,
    auth: WebhooksWrite,
    session: TenantSession,
    runtime: RuntimeDep,
    body: WebhookRotate | None = None,
) -> WebhookWithSecret:
    issued = await service.rotate_secret(
        runtime, session, auth, webhook_id, body or WebhookRotate()
    )
    return _with_secret(issued)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=Page[Delivery],
    summary="The endpoint's delivery log, newest first",
)
async def list_deliveries(
    webhook_id: str,
    auth: WebhooksRead,
    session: TenantSession,
    limit: Limit = 50,
    cursor: Cursor = None,
    status: DeliveryStatus | None = None,
    event_type: Annotated[str | None, Query(max_length=64)] = None,
    event_id: Annotated[str | None, Query(max_length=40)] = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
) -> Page[Delivery]:
    await service.get(session, auth, webhook_id)
    stmt = WebhookRepository(session, auth.tenant_id).deliveries_statement(
        webhook_id,
        status=status.value if status else None,
        event_type=event_type,
        event_id=event_id,
        since=since,
        until=until,
    )
    items, next_cursor = await keyset_page(
        session, stmt, WebhookDelivery.id, limit=limit, cursor=cursor
    )
    return Page[Delivery](items=[_delivery(d) for d in items], next_cursor=next_cursor)


@router.get(
    "/{webhook_id}/deliveries/{delivery_id}",
    response_model=DeliveryWithAttempts,
    summary="One delivery with each of its attempts",
)
async def get_delivery(
    webhook_id: str, delivery_id: str, auth: WebhooksRead, session: TenantSession
) -> DeliveryWithAttempts:
    found = await service.delivery(session, auth, webhook_id, delivery_id)
    attempts = await WebhookRepository(session, auth.tenant_id).attempts(found.id)
    return DeliveryWithAttempts(
        **_delivery(found).model_dump(),
        attempt_log=[Attempt.model_validate(a) for a in attempts],
    )


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/retry",
    response_model=Delivery,
    status_code=202,
    summary="Send a delivery again now, whatever its state",
)
async def retry_delivery(
    webhook_id: str, delivery_id: str, auth: WebhooksWrite, session: TenantSession
) -> Delivery:
    return _delivery(await service.retry_delivery(session, auth, webhook_id, delivery_id))


@router.post(
    "/{webhook_id}/replay",
    response_model=ReplayResult,
    status_code=202,
    summary="Send the events of a time range to this endpoint again",
)
async def replay(
    webhook_id: str, body: ReplayRequest, auth: WebhooksWrite, session: TenantSession
) -> ReplayResult:
    replay_id, count = await service.replay(session, auth, webhook_id, body)
    return ReplayResult(replay_id=replay_id, events=count)


@router.post(
    "/{webhook_id}/test",
    response_model=Delivery,
    status_code=202,
    summary="Send a test message to this endpoint only",
)
async def send_test(
    webhook_id: str,
    auth: WebhooksWrite,
    session: TenantSession,
    body: WebhookTest | None = None,
) -> Delivery:
    return _delivery(await service.send_test(session, auth, webhook_id, body or WebhookTest()))
