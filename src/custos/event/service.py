"""Writing domain events: added to the caller's transaction, so an event exists exactly when
the change it describes was committed.

Events are queued on the session and written with one INSERT just before the commit, like
audit entries: no ORM unit-of-work, no round trip per event. In the same transaction the
events are named for dispatch, one entry per tenant: on PostgreSQL a row of `event_outbox`
that workers turn into `events.dispatch` jobs (event/outbox.py), on SQLite the job itself.
Delivery works from committed rows it was told about, never from gaps in `seq` (which
commit out of order).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from custos.audit import service as audit
from custos.auth.principal import Principal
from custos.db import on_before_commit
from custos.event import outbox
from custos.event.repository import EventRepository
from custos.event.schemas import EventTrigger
from custos.events import CATALOGUE, EventType
from custos.exceptions import InvalidInput, NotFound
from custos.kit import pgcopy
from custos.kit.context import request_context
from custos.kit.ids import new_id, new_ids
from custos.kit.time import utcnow
from custos.models import Event
from custos.worker.defer import JobRequest, defer_request

_PENDING = "custos.events.pending"
_EVENTS = cast(sa.Table, Event.__table__)


def pending_count(session: AsyncSession) -> int:
    return len(session.info.get(_PENDING, []))


def discard_after(session: AsyncSession, count: int) -> None:
    """Forget events queued after `count`: their savepoint was rolled back."""
    del session.info.get(_PENDING, [])[count:]


def emit(
    session: AsyncSession,
    actor: Principal | None,
    event_type: EventType,
    payload: dict[str, Any],
    *,
    subject_type: str | None = None,
    subject_id: str | None = None,
    tenant_id: str | None = None,
    test: bool = False,
) -> str:
    """Queue the event; returns its id."""
    event = new_row(
        actor,
        event_type,
        payload,
        subject_type=subject_type,
        subject_id=subject_id,
        tenant_id=tenant_id,
        test=test,
    )
    session.info.setdefault(_PENDING, []).append(event)
    on_before_commit(session, "events", _write_pending)
    return str(event["id"])


def emit_many(
    session: AsyncSession,
    actor: Principal,
    event_type: EventType,
    items: list[tuple[dict[str, Any], str, str]],
) -> None:
    """Queue one event per (payload, subject_type, subject_id), as emit() would, with their
    ids made together (in order) and one timestamp: a bulk write's events."""
    if not items:
        return
    now = utcnow()
    common = {
        "tenant_id": actor.tenant_id,
        "type": event_type.name,
        "schema_version": event_type.schema_version,
        "occurred_at": now,
        "actor_type": actor.kind.value,
        "actor_id": actor.id,
        "request_id": request_context.get().request_id,
        "test": False,
    }
    session.info.setdefault(_PENDING, []).extend(
        {
            "id": event_id,
            **common,
            "subject_type": subject_type,
            "subject_id": subject_id,
            "payload": payload,
        }
        for event_id, (payload, subject_type, subject_id) in zip(
            new_ids("evt", len(items)), items, strict=True
        )
    )
    on_before_commit(session, "events", _write_pending)


@dataclass(frozen=True, slots=True)
class Prebuilt:
    """An event already in COPY's text form but for its position in the transaction's
    queue: a bulk import builds its events while it reads, off the transaction's path.
    PostgreSQL only (COPY)."""

    id: str
    tenant_id: str
    line: str  # every column after the position, tab-separated, newline-ended


def prebuilder(
    actor: Principal, event_type: EventType, *, occurred_at: datetime, subject_type: str
) -> Callable[[str, str, dict[str, Any]], Prebuilt]:
    """Events of one type, time and subject type built ahead of their transaction (a bulk
    import's): what they share is formatted once; each then needs its id, subject and
    payload."""
    shared = new_row(actor, event_type, None, subject_type=subject_type)
    shared["occurred_at"] = occurred_at
    for varying in ("id", "subject_id", "payload"):
        del shared[varying]
    template = pgcopy.Template(_NAMES, shared)
    tenant_id = shared["tenant_id"]

    def build(event_id: str, subject_id: str, payload: dict[str, Any]) -> Prebuilt:
        values = {"id": event_id, "subject_id": subject_id, "payload": payload}
        return Prebuilt(event_id, tenant_id, template.line(values))

    return build


def emit_prebuilt(session: AsyncSession, events: list[Prebuilt]) -> None:
    """Queue events built with prebuilder(), in order with the others."""
    if not events:
        return
    session.info.setdefault(_PENDING, []).extend(events)
    on_before_commit(session, "events", _write_pending)


def new_row(
    actor: Principal | None,
    event_type: EventType,
    payload: Any,
    *,
    subject_type: str | None = None,
    subject_id: str | None = None,
    tenant_id: str | None = None,
    test: bool = False,
) -> dict[str, Any]:
    """The event's values, for emit() or a caller writing the row itself."""
    tenant = tenant_id or (actor.tenant_id if actor else None)
    if tenant is None:
        raise ValueError("an event needs a tenant")
    event: dict[str, Any] = {
        "id": new_id("evt"),
        "tenant_id": tenant,
        "type": event_type.name,
        "schema_version": event_type.schema_version,
        "occurred_at": utcnow(),
        "actor_type": actor.kind.value if actor else "system",
        "actor_id": actor.id if actor else None,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "request_id": request_context.get().request_id,
        "payload": payload,
        "test": test,
    }
    return event


async def write_now(session: AsyncSession) -> None:
    """Write the queued events at once (still in the transaction), to read them back."""
    await _write_pending(session)


async def _write_pending(session: AsyncSession) -> None:
    pending: list[dict[str, Any] | Prebuilt] = session.info.pop(_PENDING, [])
    if not pending:
        return
    # Inserted in queue order, so `seq` follows it.
    built = any(isinstance(e, Prebuilt) for e in pending)
    if session.get_bind().dialect.name == "postgresql":
        # A bulk write's: through COPY (kit/pgcopy.py).
        if len(pending) >= _COPY_FROM or built:
            await pgcopy.insert_through_stage(
                session,
                stage="events_stage",
                definition=_STAGE_DEFINITION,
                columns=f"n, {_COLUMNS}",
                lines=[
                    f"{n}\t{e.line}" if isinstance(e, Prebuilt) else _copy_line(n, e)
                    for n, e in enumerate(pending)
                ],
                insert=(
                    "WITH staged AS (DELETE FROM events_stage RETURNING *)"
                    f" INSERT INTO events ({_COLUMNS}) SELECT {_COLUMNS} FROM staged ORDER BY n"
                ),
            )
        else:  # one statement, one round trip
            await session.execute(_INSERT_EVENTS, {"events": _as_json(cast(list[Any], pending))})
    else:
        if built:
            raise RuntimeError("prebuilt events are for PostgreSQL's COPY")
        await session.execute(sa.insert(_EVENTS), cast(list[dict[str, Any]], pending))
    by_tenant: dict[str, list[str]] = {}
    for event in pending:
        if isinstance(event, Prebuilt):
            by_tenant.setdefault(event.tenant_id, []).append(event.id)
        else:
            by_tenant.setdefault(event["tenant_id"], []).append(event["id"])
    if session.get_bind().dialect.name == "postgresql":
        await outbox.add(session, by_tenant)
        return
    for tenant, ids in by_tenant.items():
        defer_request(session, dispatch_job(tenant, ids))


_NAMES = (
    "id",
    "tenant_id",
    "type",
    "schema_version",
    "occurred_at",
    "actor_type",
    "actor_id",
    "subject_type",
    "subject_id",
    "request_id",
    "payload",
    "test",
)
_COLUMNS = ", ".join(_NAMES)
_STAGE_DEFINITION = (
    "(n integer, id text, tenant_id text, type text, schema_version smallint,"
    " occurred_at timestamptz, actor_type text, actor_id text, subject_type text,"
    " subject_id text, request_id text, payload jsonb, test boolean)"
)
# From this many events, COPY's three round trips cost less than one big statement.
_COPY_FROM = 200


def _copy_line(n: int, event: dict[str, Any]) -> str:
    return pgcopy.line([n, *(event[name] for name in _NAMES)])


# PostgreSQL: the events as one JSON array, unpacked in order by the server. Arrays of
# text parameters cost more to escape on the client than the rows cost to insert.
_INSERT_EVENTS = sa.text(
    "INSERT INTO events (id, tenant_id, type, schema_version, occurred_at, actor_type,"
    " actor_id, subject_type, subject_id, request_id, payload, test)"
    " SELECT e->>'id', e->>'tenant_id', e->>'type', (e->>'schema_version')::smallint,"
    " (e->>'occurred_at')::timestamptz, e->>'actor_type', e->>'actor_id', e->>'subject_type',"
    " e->>'subject_id', e->>'request_id', e->'payload', (e->>'test')::boolean"
    " FROM jsonb_array_elements(CAST(:events AS jsonb)) WITH ORDINALITY AS r(e, n) ORDER BY n"
)


def _as_json(rows: list[dict[str, Any]]) -> str:
    try:
        return orjson.dumps(rows, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # what orjson refuses (an integer past 64 bits), the stdlib takes
        return json.dumps(rows, default=lambda v: v.isoformat())


def dispatch_job(tenant_id: str, event_ids: list[str]) -> JobRequest:
    """The job that carries committed events out: webhook fan-out and the bucket."""
    return JobRequest(outbox.DISPATCH_TASK, {"tenant_id": tenant_id, "event_ids": event_ids})


async def get(session: AsyncSession, actor: Principal, event_id: str) -> Event:
    found = await EventRepository(session, actor.tenant_id).get(event_id)
    if found is None:
        raise NotFound("No such event")
    return found


async def trigger(session: AsyncSession, actor: Principal, body: EventTrigger) -> Event:
    """A test event of any catalogue type, with the given payload or the type's example."""
    event_type = CATALOGUE.get(body.type)
    if event_type is None:
        raise InvalidInput(
            f"Unknown event type: {body.type}",
            errors=[{"loc": ["body", "type"], "msg": "not in the catalogue"}],
        )
    if body.payload is None:
        payload = event_type.example.model_dump(mode="json")
    else:
        try:
            # By field name: the payload is given as receivers see it.
            model = event_type.payload.model_validate(body.payload, by_alias=False, by_name=True)
        except ValidationError as exc:
            raise InvalidInput(
                f"The payload does not match the schema of {body.type}",
                errors=[
                    {"loc": ["body", "payload", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                    for e in exc.errors(include_input=False)[:20]
                ],
            ) from None
        payload = model.model_dump(mode="json")
    event_id = emit(session, actor, event_type, payload, test=True)
    await write_now(session)
    audit.record(session, actor, "event.triggered", "event", event_id)
    return await get(session, actor, event_id)
