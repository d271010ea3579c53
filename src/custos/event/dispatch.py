"""What happens to committed events: the `events.dispatch` job, deferred in the transaction
that wrote them, hands them to every consumer. Each consumer is idempotent, so the job can
be run again after a crash: webhook deliveries are unique per endpoint and event, and an
object written twice is the same object.

Consumers: webhooks (webhook/delivery.py) and object storage (event/publishing.py). Another
consumer (automation rules, say) is one more entry in `dispatch`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from custos.event.publishing import PublishFailed
from custos.event.repository import EventRepository
from custos.models import Event
from custos.runtime import Runtime
from custos.webhook import delivery
from custos.worker.defer import defer

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Work:
    """One `events.dispatch` job: its claim token, tenant and events."""

    claim: str
    tenant_id: str
    event_ids: list[str]


async def load(runtime: Runtime, tenant_id: str, event_ids: Sequence[str]) -> list[Event]:
    async with runtime.db.transaction(tenant_id=tenant_id, write=False) as session:
        return await EventRepository(session, tenant_id).by_ids(event_ids)


@dataclass(frozen=True, slots=True)
class Planned:
    """One tenant's part of a dispatch, planned and committed: what to send and publish."""

    tenant_id: str
    found: list[Event]
    messages: list[delivery.Message]


async def plan(runtime: Runtime, work: Sequence[Work]) -> list[Planned]:
    """One transaction per tenant reads the events of several jobs and creates their
    deliveries (delivery.plan)."""
    by_tenant: dict[str, list[Work]] = {}
    for item in work:
        by_tenant.setdefault(item.tenant_id, []).append(item)
    planned = []
    for tenant_id, items in by_tenant.items():
        claims = {event_id: item.claim for item in items for event_id in item.event_ids}
        async with runtime.db.transaction(tenant_id=tenant_id) as session:
            found = await EventRepository(session, tenant_id).by_ids(list(claims))
            messages = await delivery.plan(runtime, session, tenant_id, found, claims)
        if found:
            planned.append(Planned(tenant_id, found, messages))
    return planned


async def hand_out(runtime: Runtime, planned: Sequence[Planned]) -> None:
    """Sending and publishing of what `plan` committed, all at the same time."""
    outcomes = await asyncio.gather(
        *(
            job
            for part in planned
            for job in (
                delivery.send_and_record(runtime, part.tenant_id, part.messages),
                publish(runtime, part.tenant_id, part.found),
            )
        ),
        return_exceptions=True,
    )
    _raise_first(outcomes)


def _raise_first(outcomes: Sequence[object]) -> None:
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


async def publish(runtime: Runtime, tenant_id: str, found: Sequence[Event]) -> None:
    """Write the events to the bucket; what fails gets an `events.publish` job of its own,
    retried on the webhook schedule, so one slow store does not hold webhooks back."""
    if runtime.publisher is None:
        return
    try:
        await runtime.publisher.put(found)
    except PublishFailed as exc:
        log.warning("events_not_published", count=len(exc.failed), error=str(exc))
        async with runtime.db.transaction(tenant_id=tenant_id) as session:
            defer(session, "events.publish", tenant_id=tenant_id, event_ids=exc.failed)


async def publish_again(runtime: Runtime, tenant_id: str, event_ids: Sequence[str]) -> None:
    if runtime.publisher is None:
        return
    await runtime.publisher.put(await load(runtime, tenant_id, event_ids))
