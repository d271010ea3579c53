"""Turning committed events into webhook messages, sending them, and keeping the record.

1. `plan` (in the `events.dispatch` job's transaction, event/dispatch.py): the tenant's
   enabled endpoints whose types and filter match each event get a `webhook_deliveries` row
   (unique per endpoint and event, so a dispatch job run twice adds nothing), and the new
   ones are sent right after the commit. A large fan-out (a batch import) is split into
   `webhooks.deliver` jobs instead.
2. `send_and_record`: each message is signed (Standard Webhooks), sent through the guarded
   client, and its attempt recorded; a failure schedules a `webhooks.deliver` job at the next
   retry time (or the receiver's Retry-After), in the same transaction as the record.
3. 410 Gone disables the endpoint at once; failing without a success for
   `webhook_disable_after_seconds` disables it too. Either emits `webhook.endpoint_disabled`.

Before sending, the job claims the deliveries (`claim`, `claimed_until`): another job that
finds them claimed leaves them alone, and the same job, run again after its worker died
(worker/recovery.py), takes them back. `sweep` re-queues pending deliveries whose job was
lost (long overdue and unclaimed).

At least once: a message keeps its host turn from sending until its answer is recorded, so
what a killed worker sends again is what it had in flight, at most one message per turn.
Receivers deduplicate on `webhook-id`, which is the event id on every attempt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
import structlog
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from custos import events as catalogue
from custos.audit import service as audit
from custos.event import service as event_log
from custos.event.envelope import message_bytes
from custos.event.repository import EventRepository
from custos.kit.ids import new_id
from custos.kit.time import as_utc, utcnow
from custos.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from custos.runtime import Runtime
from custos.webhook import signing
from custos.webhook.filters import payload_matches, type_wanted
from custos.webhook.recording import recorder_of
from custos.webhook.sender import Outcome, Turn
from custos.worker.defer import defer
from custos.worker.retry import backoff_delay

log = structlog.get_logger(__name__)

# Above this many new messages, a fan-out is handed to `webhooks.deliver` jobs of CHUNK each.
INLINE_LIMIT = 200
CHUNK = 200
# A delivery job runs what is due now, or within this much of now.
DUE_SLACK = timedelta(seconds=1)
# Pending this long past its time, unclaimed: its job was lost, the sweep queues another.
OVERDUE = timedelta(minutes=5)
REPLAY_PAGE = 500
_DELIVERIES = cast(sa.Table, WebhookDelivery.__table__)
_ATTEMPTS = cast(sa.Table, WebhookAttempt.__table__)


@dataclass(slots=True)
class Message:
    delivery_id: str
    attempts: int
    endpoint: WebhookEndpoint
    event: Event


def queue_deliveries(
    session: AsyncSession,
    tenant_id: str,
    delivery_ids: Sequence[str],
    *,
    schedule_at: datetime | None = None,
) -> None:
    """`webhooks.deliver` jobs for these deliveries, CHUNK a job, in the caller's transaction."""
    for start in range(0, len(delivery_ids), CHUNK):
        defer(
            session,
            "webhooks.deliver",
            tenant_id=tenant_id,
            delivery_ids=list(delivery_ids[start : start + CHUNK]),
            schedule_at=schedule_at,
        )


def addressed_to(event: Event) -> str | None:
    """The one endpoint a webhook test event is for (None: an event for every subscriber)."""
    return event.subject_id if event.test and event.subject_type == "webhook_endpoint" else None


def wants(endpoint: WebhookEndpoint, event: Event) -> bool:
    return (
        endpoint.enabled
        and addressed_to(event) is None
        and event.occurred_at >= endpoint.created_at
        and type_wanted(endpoint.event_types, event.type)
        and payload_matches(endpoint.filter, event.payload)
    )


def insert_ignoring_duplicates(session: AsyncSession) -> Any:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(_DELIVERIES).on_conflict_do_nothing()


def claim_until(runtime: Runtime, now: datetime, count: int) -> datetime:
    """Long enough to send `count` messages at the configured concurrency, timeouts and all."""
    settings = runtime.settings
    rounds = -(-count // settings.webhook_concurrency_per_host)
    return now + timedelta(seconds=rounds * settings.webhook_timeout_seconds + 30)


def _claimable(claim: str, now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(
        WebhookDelivery.claimed_until.is_(None),
        WebhookDelivery.claimed_until < now,
        WebhookDelivery.claim == claim,
    )


async def plan(
    runtime: Runtime,
    session: AsyncSession,
    tenant_id: str,
    found: Sequence[Event],
    claims: Mapping[str, str] | str,
) -> list[Message]:
    """In the caller's transaction: the deliveries these events make, created (once) and
    claimed by the job each event came with (`claims`: event id -> claim, or one for all);
    returns the messages to send now, after the commit."""
    now = utcnow()

    def claim_of(event_id: str) -> str:
        return claims if isinstance(claims, str) else claims[event_id]

    endpoints = list(
        (
            await session.execute(
                sa.select(WebhookEndpoint).where(
                    WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.enabled
                )
            )
        ).scalars()
    )
    pairs = [(ep, ev) for ev in found for ep in endpoints if wants(ep, ev)]
    if not pairs:
        return []
    inline = len(pairs) <= INLINE_LIMIT
    until = claim_until(runtime, now, len(pairs)) if inline else None
    rows = [
        {
            "id": new_id("dlv"),
            "tenant_id": tenant_id,
            "endpoint_id": ep.id,
            "event_id": ev.id,
            "event_type": ev.type,
            "batch": "",
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "claim": claim_of(ev.id) if inline else None,
            "claimed_until": until,
            "created_at": now,
        }
        for ep, ev in pairs
    ]
    columns = (_DELIVERIES.c.id, _DELIVERIES.c.endpoint_id, _DELIVERIES.c.event_id)
    created = await session.execute(insert_ignoring_duplicates(session).returning(*columns), rows)
    ids = {(endpoint_id, event_id): id_ for id_, endpoint_id, event_id in created}
    if len(ids) < len(rows):
        # This dispatch ran before (its worker died): what it created and never tried.
        by_claim: dict[str, list[str]] = {}
        for event in found:
            by_claim.setdefault(claim_of(event.id), []).append(event.id)
        for claim, event_ids in by_claim.items():
            again = await session.execute(
                sa.update(WebhookDelivery)
                .where(
                    WebhookDelivery.tenant_id == tenant_id,
                    WebhookDelivery.event_id.in_(event_ids),
                    WebhookDelivery.batch == "",
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.attempts == 0,
                    _claimable(claim, now),
                )
                .values(claim=claim if inline else None, claimed_until=until)
                .returning(
                    WebhookDelivery.id, WebhookDelivery.endpoint_id, WebhookDelivery.event_id
                )
                .execution_options(synchronize_session=False)
            )
            ids |= {(endpoint_id, event_id): id_ for id_, endpoint_id, event_id in again}
    messages = [
        Message(ids[(ep.id, ev.id)], 0, ep, ev) for ep, ev in pairs if (ep.id, ev.id) in ids
    ]
    if not inline:
        queue_deliveries(session, tenant_id, [m.delivery_id for m in messages])
        return []
    return messages


async def deliver(
    runtime: Runtime, tenant_id: str, delivery_ids: Sequence[str], claim: str
) -> None:
    """Send the given deliveries that are still pending, due now and not claimed by another
    job."""
    now = utcnow()
    async with runtime.db.transaction(tenant_id=tenant_id) as session:
        claimed = list(
            (
                await session.execute(
                    sa.update(WebhookDelivery)
                    .where(
                        WebhookDelivery.tenant_id == tenant_id,
                        WebhookDelivery.id.in_(delivery_ids),
                        WebhookDelivery.status == "pending",
                        WebhookDelivery.next_attempt_at <= now + DUE_SLACK,
                        _claimable(claim, now),
                    )
                    .values(claim=claim, claimed_until=claim_until(runtime, now, len(delivery_ids)))
                    .returning(WebhookDelivery.id)
                    .execution_options(synchronize_session=False)
                )
            ).scalars()
        )
        if not claimed:
            return
        rows = (
            await session.execute(
                sa.select(WebhookDelivery, WebhookEndpoint, Event)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .join(Event, Event.id == WebhookDelivery.event_id)
                .where(WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.id.in_(claimed))
                .order_by(Event.seq)
            )
        ).all()
    messages = [Message(d.id, d.attempts, ep, ev) for d, ep, ev in rows]
    if messages:
        await send_and_record(runtime, tenant_id, messages)


def _secrets(runtime: Runtime, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    box = runtime.webhooks.box
    found = [box.open(endpoint.secret_sealed, endpoint.id)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_sealed and expires is not None and expires > now:
        found.append(box.open(endpoint.previous_secret_sealed, endpoint.id))
    return found


def custom_headers(runtime: Runtime, endpoint: WebhookEndpoint) -> dict[str, str]:
    box = runtime.webhooks.box
    return {
        name: box.open(sealed, f"{endpoint.id}:{name}")
        for name, sealed in (endpoint.headers or {}).items()
    }


async def _send_one(runtime: Runtime, turn: Turn, message: Message) -> Outcome:
    endpoint, event = message.endpoint, message.event
    try:
        secrets = _secrets(runtime, endpoint, utcnow())
        headers = custom_headers(runtime, endpoint)
    except ValueError as exc:
        return Outcome(utcnow(), 0.0, error=f"cannot sign: {exc}")
    body = message_bytes(event)
    # Signed once the turn is ours: the timestamp is the sending time, however long the
    # message waited for a turn (receivers refuse old timestamps).
    timestamp = int(time.time())
    headers.update(
        {
            "webhook-id": event.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signing.signature_header(secrets, event.id, timestamp, body),
        }
    )
    return await turn.send(headers, body)


async def send_and_record(runtime: Runtime, tenant_id: str, messages: Sequence[Message]) -> None:
    """Send concurrently, each message recorded on its own as soon as its answer arrives.

    A message keeps its turn (sender.py) from the moment it is sent until its record has
    committed: a worker killed at any instant has at most one message per turn sent and not
    recorded, and only those are sent again. Nothing waits for another message's record,
    and no new message goes out while the answers already in hand are unrecorded."""
    if not messages:
        return
    to_send: list[Message] = []
    held: list[tuple[Message, float]] = []
    dropped: list[Message] = []
    for message in messages:
        endpoint = message.endpoint
        if not endpoint.enabled:
            dropped.append(message)
            continue
        wait = await runtime.webhooks.wait_for_rate_limit(
            endpoint.id, endpoint.rate_limit_per_second
        )
        if wait:
            held.append((message, wait))
        else:
            to_send.append(message)
    # Nothing of these was sent: recorded first, in one transaction.
    await _record(runtime, tenant_id, [], held, dropped)
    outcomes = await asyncio.gather(
        *(_send_and_record_one(runtime, tenant_id, m) for m in to_send), return_exceptions=True
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


async def _send_and_record_one(runtime: Runtime, tenant_id: str, message: Message) -> None:
    async with runtime.webhooks.turn(message.endpoint.url) as turn:
        outcome = await _send_one(runtime, turn, message)
        if runtime.db.is_postgres and outcome.succeeded and message.endpoint.failing_since is None:
            # A success to a healthy endpoint (the common case): one round trip.
            assert outcome.status_code is not None
            await recorder_of(runtime.db).record(
                tenant_id,
                _attempt_row(tenant_id, message, outcome),
                (message.delivery_id, message.attempts + 1, outcome.status_code),
            )
        else:
            await _record(runtime, tenant_id, [(message, outcome)], [], [])


def _attempt_row(tenant_id: str, message: Message, outcome: Outcome) -> dict[str, Any]:
    return {
        "id": new_id("att"),
        "tenant_id": tenant_id,
        "delivery_id": message.delivery_id,
        "number": message.attempts + 1,
        "started_at": outcome.started_at,
        "duration_ms": outcome.duration_ms,
        "status_code": outcome.status_code,
        "outcome": outcome.label,
        "error": outcome.error[:500] if outcome.error else None,
        "response_body": outcome.response_body,
    }


async def _record(
    runtime: Runtime,
    tenant_id: str,
    results: list[tuple[Message, Outcome]],
    held: list[tuple[Message, float]],
    dropped: list[Message],
) -> None:
    if not (results or held or dropped):
        return
    settings = runtime.settings
    now = utcnow()
    attempts: list[dict[str, Any]] = []
    # Successes with the same attempt number and status share one UPDATE: the common case
    # (every message answered 2xx first time) is one statement for the whole batch.
    succeeded: dict[tuple[int, int], list[str]] = {}
    updates: list[dict[str, Any]] = []
    retries: list[tuple[str, datetime]] = []
    gone: dict[str, WebhookEndpoint] = {}
    failing: dict[str, WebhookEndpoint] = {}
    recovered: set[str] = set()
    healthy: set[str] = set()
    for message, outcome in results:
        number = message.attempts + 1
        error = outcome.error[:500] if outcome.error else None
        attempts.append(_attempt_row(tenant_id, message, outcome))
        endpoint = message.endpoint
        if outcome.succeeded:
            assert outcome.status_code is not None
            succeeded.setdefault((number, outcome.status_code), []).append(message.delivery_id)
            healthy.add(endpoint.id)
            if endpoint.failing_since is not None:
                recovered.add(endpoint.id)
            continue
        update: dict[str, Any] = {
            "id": message.delivery_id,
            "claim": None,
            "claimed_until": None,
            "attempts": number,
            "last_attempt_at": outcome.started_at,
            "last_status_code": outcome.status_code,
            "last_error": error,
        }
        if outcome.gone:
            gone[endpoint.id] = endpoint
            delay = None
        else:
            failing[endpoint.id] = endpoint
            delay = outcome.retry_after or backoff_delay(
                settings.webhook_retry_schedule, number - 1, settings.webhook_retry_jitter
            )
        if delay is None:
            update |= {"status": "failed", "next_attempt_at": None}
        else:
            at = now + timedelta(seconds=delay)
            update |= {"status": "pending", "next_attempt_at": at}
            retries.append((message.delivery_id, at))
        updates.append(update)
    for message, wait in held:
        at = now + timedelta(seconds=wait)
        updates.append(
            {"id": message.delivery_id, "next_attempt_at": at, "claim": None, "claimed_until": None}
        )
        retries.append((message.delivery_id, at))
    for message in dropped:
        updates.append(
            {
                "id": message.delivery_id,
                "status": "failed",
                "next_attempt_at": None,
                "last_error": "the endpoint is disabled",
                "claim": None,
                "claimed_until": None,
            }
        )
    async with runtime.db.transaction(tenant_id=tenant_id) as session:
        if attempts:
            await session.execute(sa.insert(_ATTEMPTS), attempts)
        for (number, status_code), ids in succeeded.items():
            await session.execute(
                _DELIVERIES.update()
                .where(_DELIVERIES.c.tenant_id == tenant_id, _DELIVERIES.c.id.in_(ids))
                .values(
                    status="succeeded",
                    attempts=number,
                    succeeded_at=now,
                    last_attempt_at=now,
                    last_status_code=status_code,
                    last_error=None,
                    next_attempt_at=None,
                    claim=None,
                    claimed_until=None,
                )
            )
        for group in _same_keys(updates):
            await session.execute(sa.update(WebhookDelivery), group)
        await _endpoint_health(runtime, session, tenant_id, recovered, healthy, failing, gone, now)
        for delivery_id, at in retries:
            queue_deliveries(session, tenant_id, [delivery_id], schedule_at=at)


def _same_keys(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Bulk UPDATE by primary key needs the same columns in every row of a batch."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return list(groups.values())


async def _endpoint_health(
    runtime: Runtime,
    session: AsyncSession,
    tenant_id: str,
    recovered: set[str],
    healthy: set[str],
    failing: dict[str, WebhookEndpoint],
    gone: dict[str, WebhookEndpoint],
    now: datetime,
) -> None:
    """A success ends a failing streak; a failure starts one, and one that has lasted too
    long disables the endpoint. Healthy endpoints (the common case) cost no statement."""
    table = WebhookEndpoint
    if recovered:
        await session.execute(
            sa.update(table)
            .where(table.id.in_(recovered), table.failing_since.is_not(None))
            .values(failing_since=None)
            .execution_options(synchronize_session=False)
        )
    failing_only = {k: v for k, v in failing.items() if k not in healthy}
    if failing_only:
        await session.execute(
            sa.update(table)
            .where(table.id.in_(failing_only), table.failing_since.is_(None))
            .values(failing_since=now)
            .execution_options(synchronize_session=False)
        )
        cutoff = now - timedelta(seconds=runtime.settings.webhook_disable_after_seconds)
        disabled = (
            await session.execute(
                sa.update(table)
                .where(
                    table.id.in_(failing_only),
                    table.enabled,
                    table.failing_since <= cutoff,
                )
                .values(enabled=False, disabled_reason="failing", disabled_at=now)
                .returning(table.id, table.url, table.failing_since)
                .execution_options(synchronize_session=False)
            )
        ).all()
        for endpoint_id, url, since in disabled:
            _announce_disabled(session, tenant_id, endpoint_id, url, "failing", since)
    if gone:
        disabled = (
            await session.execute(
                sa.update(table)
                .where(table.id.in_(gone), table.enabled)
                .values(enabled=False, disabled_reason="gone", disabled_at=now)
                .returning(table.id, table.url, table.failing_since)
                .execution_options(synchronize_session=False)
            )
        ).all()
        for endpoint_id, url, since in disabled:
            _announce_disabled(session, tenant_id, endpoint_id, url, "gone", since)


def _announce_disabled(
    session: AsyncSession,
    tenant_id: str,
    endpoint_id: str,
    url: str,
    reason: str,
    failing_since: datetime | None,
) -> None:
    log.warning("webhook_endpoint_disabled", endpoint_id=endpoint_id, reason=reason)
    audit.record(
        session,
        None,
        "webhook.disabled",
        "webhook",
        endpoint_id,
        tenant_id=tenant_id,
        changes={
            "enabled": {"from": True, "to": False},
            "disabled_reason": {"from": None, "to": reason},
        },
    )
    event_log.emit(
        session,
        None,
        catalogue.WEBHOOK_ENDPOINT_DISABLED,
        {
            "endpoint_id": endpoint_id,
            "url": url,
            "reason": reason,
            "failing_since": (
                as_utc(failing_since).isoformat().replace("+00:00", "Z") if failing_since else None
            ),
        },
        subject_type="webhook_endpoint",
        subject_id=endpoint_id,
        tenant_id=tenant_id,
    )


async def replay(
    runtime: Runtime,
    tenant_id: str,
    endpoint_id: str,
    replay_id: str,
    since: datetime,
    until: datetime,
    event_types: list[str],
) -> int:
    """Queue the range's events for one endpoint again, a page at a time; returns how many.
    Run twice, it adds nothing: deliveries are unique per endpoint, event and replay."""
    queued = 0
    after_seq = 0
    while True:
        async with runtime.db.transaction(tenant_id=tenant_id) as session:
            endpoint = await session.get(WebhookEndpoint, endpoint_id)
            if endpoint is None or endpoint.tenant_id != tenant_id or not endpoint.enabled:
                return queued
            page = list(
                (
                    await session.execute(
                        EventRepository(session, tenant_id)
                        .list_statement(
                            types=event_types, since=since, until=until, after_seq=after_seq
                        )
                        .order_by(Event.seq)
                        .limit(REPLAY_PAGE)
                    )
                ).scalars()
            )
            if not page:
                return queued
            after_seq = page[-1].seq
            now = utcnow()
            rows = [
                {
                    "id": new_id("dlv"),
                    "tenant_id": tenant_id,
                    "endpoint_id": endpoint.id,
                    "event_id": event.id,
                    "event_type": event.type,
                    "batch": replay_id,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for event in page
                if _replayable(endpoint, event)
            ]
            if rows:
                ids = list(
                    (
                        await session.execute(
                            insert_ignoring_duplicates(session).returning(_DELIVERIES.c.id),
                            rows,
                        )
                    ).scalars()
                )
                queue_deliveries(session, tenant_id, ids)
                queued += len(ids)
        if len(page) < REPLAY_PAGE:
            return queued


def _replayable(endpoint: WebhookEndpoint, event: Event) -> bool:
    target = addressed_to(event)
    if target is not None and target != endpoint.id:
        return False
    return payload_matches(endpoint.filter, event.payload)


async def sweep(runtime: Runtime) -> int:
    """Queue a job for every delivery long overdue and unclaimed (its job was lost)."""
    now = utcnow()
    async with runtime.db.transaction(system=True) as session:
        rows = (
            await session.execute(
                sa.select(WebhookDelivery.tenant_id, WebhookDelivery.id)
                .where(
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.next_attempt_at < now - OVERDUE,
                    sa.or_(
                        WebhookDelivery.claimed_until.is_(None),
                        WebhookDelivery.claimed_until < now,
                    ),
                )
                .limit(10_000)
            )
        ).all()
        by_tenant: dict[str, list[str]] = {}
        for tenant_id, delivery_id in rows:
            by_tenant.setdefault(tenant_id, []).append(delivery_id)
        for tenant_id, ids in by_tenant.items():
            queue_deliveries(session, tenant_id, ids)
    if rows:
        log.warning("overdue_deliveries_requeued", count=len(rows))
    return len(rows)
