from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from custos import events as catalogue
from custos.audit import service as audit
from custos.auth.principal import Principal
from custos.db import on_before_commit
from custos.event import service as event_log
from custos.event.repository import EventRepository
from custos.exceptions import Conflict, InvalidInput, NotFound
from custos.kit.etag import check_if_match
from custos.kit.ids import new_id
from custos.kit.netpolicy import RefusedAddress
from custos.kit.time import as_utc, utcnow
from custos.models import WebhookDelivery, WebhookEndpoint
from custos.runtime import Runtime
from custos.webhook import signing
from custos.webhook.delivery import queue_deliveries
from custos.webhook.repository import WebhookRepository
from custos.webhook.schemas import (
    ReplayRequest,
    Webhook,
    WebhookCreate,
    WebhookRotate,
    WebhookTest,
    WebhookUpdate,
)
from custos.worker.defer import defer

MAX_REPLAY_EVENTS = 100_000


@dataclass(frozen=True, slots=True)
class IssuedSecret:
    endpoint: WebhookEndpoint
    secret: str


def present(endpoint: WebhookEndpoint) -> Webhook:
    return Webhook(
        id=endpoint.id,
        url=endpoint.url,
        description=endpoint.description,
        event_types=endpoint.event_types,
        filter=endpoint.filter,
        enabled=endpoint.enabled,
        disabled_reason=endpoint.disabled_reason,
        disabled_at=endpoint.disabled_at,
        rate_limit_per_second=endpoint.rate_limit_per_second,
        header_names=sorted(endpoint.headers or {}),
        previous_secret_expires_at=endpoint.previous_secret_expires_at,
        failing_since=endpoint.failing_since,
        version=endpoint.version,
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
    )


def _where(url: str) -> str:
    """The URL as audit rows record it: its path and query may carry a receiver's token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…" if parts.path not in ("", "/") else url


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, errors=[{"loc": ["body", field], "msg": message}])


async def _check_url(runtime: Runtime, url: str) -> None:
    try:
        await runtime.webhooks.policy.check_resolved(url)
    except RefusedAddress as exc:
        raise _invalid("url", f"This URL cannot receive webhooks: {exc.reason}") from None


def _check_known(patterns: list[str], field: str = "event_types") -> None:
    unknown = [p for p in patterns if "*" not in p and p not in catalogue.CATALOGUE]
    if unknown:
        raise _invalid(field, f"Unknown event types: {', '.join(unknown[:5])}")


def _seal_headers(runtime: Runtime, endpoint_id: str, headers: dict[str, str]) -> dict[str, str]:
    box = runtime.webhooks.box
    return {name: box.seal(value, f"{endpoint_id}:{name}") for name, value in headers.items()}


async def create(
    runtime: Runtime, session: AsyncSession, actor: Principal, body: WebhookCreate
) -> IssuedSecret:
    await _check_url(runtime, body.url)
    _check_known(body.event_types)
    repo = WebhookRepository(session, actor.tenant_id)
    most = runtime.settings.webhook_max_endpoints_per_tenant
    if await repo.count() >= most:
        raise Conflict(f"A tenant can have at most {most} webhook endpoints")
    endpoint_id = new_id("whk")
    secret = signing.new_secret()
    endpoint = WebhookEndpoint(
        id=endpoint_id,
        tenant_id=actor.tenant_id,
        url=body.url,
        description=body.description,
        event_types=body.event_types,
        filter=body.filter,
        enabled=body.enabled,
        disabled_reason=None if body.enabled else "manual",
        disabled_at=None if body.enabled else utcnow(),
        rate_limit_per_second=body.rate_limit_per_second,
        headers=_seal_headers(runtime, endpoint_id, body.headers),
        secret_sealed=runtime.webhooks.box.seal(secret, endpoint_id),
        version=1,
        created_by=actor.id,
    )
    session.add(endpoint)
    await session.flush()
    audit.record(
        session,
        actor,
        "webhook.created",
        "webhook",
        endpoint.id,
        changes={
            "url": {"from": None, "to": _where(body.url)},
            "event_types": {"from": None, "to": body.event_types},
            "enabled": {"from": None, "to": body.enabled},
        },
    )
    return IssuedSecret(endpoint, secret)


async def get(session: AsyncSession, actor: Principal, endpoint_id: str) -> WebhookEndpoint:
    endpoint = await WebhookRepository(session, actor.tenant_id).get(endpoint_id)
    if endpoint is None:
        raise NotFound("No such webhook endpoint")
    return endpoint


async def _get_for_update(
    session: AsyncSession, actor: Principal, endpoint_id: str
) -> WebhookEndpoint:
    endpoint = await WebhookRepository(session, actor.tenant_id).get(endpoint_id, for_update=True)
    if endpoint is None:
        raise NotFound("No such webhook endpoint")
    return endpoint


async def update(
    runtime: Runtime,
    session: AsyncSession,
    actor: Principal,
    endpoint_id: str,
    body: WebhookUpdate,
    if_match: str | None,
) -> WebhookEndpoint:
    endpoint = await _get_for_update(session, actor, endpoint_id)
    check_if_match(endpoint, if_match, what="webhook endpoint")
    given = body.model_fields_set
    for required in ("url", "event_types", "enabled", "headers"):
        if required in given and getattr(body, required) is None:
            raise _invalid(required, f"{required} cannot be null")
    changes: dict[str, Any] = {}

    def change(name: str, new: Any, shown: Any = None) -> None:
        old = getattr(endpoint, name)
        if old != new:
            changes[name] = {
                "from": shown(old) if shown else old,
                "to": shown(new) if shown else new,
            }
            setattr(endpoint, name, new)

    if "url" in given and body.url is not None:
        await _check_url(runtime, body.url)
        change("url", body.url, _where)
    if "event_types" in given and body.event_types is not None:
        _check_known(body.event_types)
        change("event_types", body.event_types)
    for name in ("description", "filter", "rate_limit_per_second"):
        if name in given:
            change(name, getattr(body, name))
    if "headers" in given and body.headers is not None:
        old_names = sorted(endpoint.headers or {})
        endpoint.headers = _seal_headers(runtime, endpoint.id, body.headers)
        changes["header_names"] = {"from": old_names, "to": sorted(body.headers)}
    if "enabled" in given and body.enabled is not None and body.enabled != endpoint.enabled:
        change("enabled", body.enabled)
        if body.enabled:
            endpoint.disabled_reason = endpoint.disabled_at = endpoint.failing_since = None
        else:
            endpoint.disabled_reason, endpoint.disabled_at = "manual", utcnow()
    if changes:
        endpoint.version += 1
        endpoint.updated_at = utcnow()
        await session.flush()
    audit.record(session, actor, "webhook.updated", "webhook", endpoint.id, changes=changes)
    return endpoint


async def delete(session: AsyncSession, actor: Principal, endpoint_id: str) -> None:
    endpoint = await _get_for_update(session, actor, endpoint_id)
    await session.delete(endpoint)
    await session.flush()
    audit.record(
        session,
        actor,
        "webhook.deleted",
        "webhook",
        endpoint_id,
        changes={"url": {"from": _where(endpoint.url), "to": None}},
    )


async def rotate_secret(
    runtime: Runtime,
    session: AsyncSession,
    actor: Principal,
    endpoint_id: str,
    body: WebhookRotate,
) -> IssuedSecret:
    endpoint = await _get_for_update(session, actor, endpoint_id)
    secret = signing.new_secret()
    if body.grace_period_seconds > 0:
        # Only the secret just replaced keeps signing; an older one in its grace ends now.
        endpoint.previous_secret_sealed = endpoint.secret_sealed
        endpoint.previous_secret_expires_at = utcnow() + timedelta(
            seconds=body.grace_period_seconds
        )
    else:
        endpoint.previous_secret_sealed = endpoint.previous_secret_expires_at = None
    endpoint.secret_sealed = runtime.webhooks.box.seal(secret, endpoint.id)
    endpoint.version += 1
    endpoint.updated_at = utcnow()
    await session.flush()
    audit.record(
        session,
        actor,
        "webhook.secret_rotated",
        "webhook",
        endpoint.id,
        changes={"grace_period_seconds": {"from": None, "to": body.grace_period_seconds}},
    )
    return IssuedSecret(endpoint, secret)


async def delivery(
    session: AsyncSession, actor: Principal, endpoint_id: str, delivery_id: str
) -> WebhookDelivery:
    await get(session, actor, endpoint_id)
    found = await WebhookRepository(session, actor.tenant_id).delivery(endpoint_id, delivery_id)
    if found is None:
        raise NotFound("No such delivery")
    return found


def _ensure_enabled(endpoint: WebhookEndpoint) -> None:
    if not endpoint.enabled:
        raise Conflict("The endpoint is disabled: enable it first (PATCH enabled: true)")


async def retry_delivery(
    session: AsyncSession, actor: Principal, endpoint_id: str, delivery_id: str
) -> WebhookDelivery:
    endpoint = await get(session, actor, endpoint_id)
    found = await WebhookRepository(session, actor.tenant_id).delivery(endpoint_id, delivery_id)
    if found is None:
        raise NotFound("No such delivery")
    _ensure_enabled(endpoint)
    previous = found.status
    found.status = "pending"
    found.next_attempt_at = utcnow()
    await session.flush()
    queue_deliveries(session, actor.tenant_id, [found.id])
    audit.record(
        session,
        actor,
        "webhook.delivery_retried",
        "webhook_delivery",
        found.id,
        changes={"status": {"from": previous, "to": "pending"}},
    )
    return found


async def replay(
    session: AsyncSession, actor: Principal, endpoint_id: str, body: ReplayRequest
) -> tuple[str, int]:
    endpoint = await get(session, actor, endpoint_id)
    _ensure_enabled(endpoint)
    since = as_utc(body.since)
    until = as_utc(body.until) if body.until else utcnow()
    if since >= until:
        raise _invalid("since", "since must be before until")
    types = body.event_types or endpoint.event_types
    _check_known(types)
    stmt = EventRepository(session, actor.tenant_id).list_statement(
        types=types, since=since, until=until
    )
    count = int(
        (
            await session.execute(sa.select(sa.func.count()).select_from(stmt.subquery()))
        ).scalar_one()
    )
    if count > MAX_REPLAY_EVENTS:
        raise _invalid(
            "since", f"{count} events in this range; replay at most {MAX_REPLAY_EVENTS} at a time"
        )
    replay_id = new_id("rpl")
    defer(
        session,
        "webhooks.replay",
        tenant_id=actor.tenant_id,
        endpoint_id=endpoint.id,
        replay_id=replay_id,
        since=since.isoformat(),
        until=until.isoformat(),
        event_types=types,
    )
    audit.record(
        session,
        actor,
        "webhook.replayed",
        "webhook",
        endpoint.id,
        changes={
            "replay_id": {"from": None, "to": replay_id},
            "since": {"from": None, "to": since.isoformat()},
            "until": {"from": None, "to": until.isoformat()},
            "events": {"from": None, "to": count},
        },
    )
    return replay_id, count


async def send_test(
    session: AsyncSession, actor: Principal, endpoint_id: str, body: WebhookTest
) -> WebhookDelivery:
    """A test event addressed to this endpoint only, and its delivery."""
    endpoint = await get(session, actor, endpoint_id)
    _ensure_enabled(endpoint)
    event_type = catalogue.CATALOGUE.get(body.event_type)
    if event_type is None:
        raise _invalid("event_type", f"Unknown event type: {body.event_type}")
    if event_type is catalogue.WEBHOOK_TEST:
        payload: dict[str, Any] = {
            "endpoint_id": endpoint.id,
            "message": "A test message from Custos",
        }
    else:
        payload = event_type.example.model_dump(mode="json")
    event_id = event_log.emit(
        session,
        actor,
        event_type,
        payload,
        subject_type="webhook_endpoint",
        subject_id=endpoint.id,
        test=True,
    )
    now = utcnow()
    found = WebhookDelivery(
        id=new_id("dlv"),
        tenant_id=actor.tenant_id,
        endpoint_id=endpoint.id,
        event_id=event_id,
        event_type=event_type.name,
        batch="test",
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )

    async def write_delivery(hooked: AsyncSession) -> None:
        # After the event row: the events hook was registered first and runs first.
        hooked.add(found)
        await hooked.flush()
        queue_deliveries(hooked, actor.tenant_id, [found.id])

    on_before_commit(session, f"webhook-test:{found.id}", write_delivery)
    audit.record(
        session,
        actor,
        "webhook.tested",
        "webhook",
        endpoint.id,
        changes={"event_type": {"from": None, "to": event_type.name}},
    )
    return found
