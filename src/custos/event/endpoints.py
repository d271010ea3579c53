from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query, Response
from pydantic import AwareDatetime

from custos.auth.dependencies import EventsRead, EventsWrite, TenantSession
from custos.event import service
from custos.event.envelope import envelope
from custos.event.repository import EventRepository
from custos.event.schemas import Event, EventTrigger
from custos.exceptions import InvalidInput
from custos.kit.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor
from custos.kit.routing import CustosRouter
from custos.models import Event as EventModel
from custos.webhook.filters import check_pattern

router = CustosRouter(prefix="/events", tags=["events"])

TypeFilter = Annotated[
    list[str] | None,
    Query(
        alias="type",
        max_length=20,
        description="An event type or pattern (`customer.*`); repeat for several",
    ),
]


def _patterns(values: list[str] | None) -> list[str]:
    for value in values or ():
        try:
            check_pattern(value)
        except ValueError as exc:
            raise InvalidInput(
                str(exc), errors=[{"loc": ["query", "type"], "msg": "not a type or pattern"}]
            ) from None
    return values or []


@router.get(
    "",
    response_model=Page[Event],
    summary="The event log, newest first (or oldest first with order=asc)",
)
async def list_events(
    auth: EventsRead,
    session: TenantSession,
    limit: Limit = 50,
    cursor: Cursor = None,
    types: TypeFilter = None,
    subject_type: Annotated[str | None, Query(max_length=40)] = None,
    subject_id: Annotated[str | None, Query(max_length=40)] = None,
    actor_id: Annotated[str | None, Query(max_length=40)] = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    after_seq: Annotated[
        int | None, Query(ge=0, description="Only events after this seq (to catch up)")
    ] = None,
    test: Annotated[bool | None, Query(description="Only test events, or none")] = None,
    order: Literal["asc", "desc"] = "desc",
) -> Page[Event]:
    stmt = EventRepository(session, auth.tenant_id).list_statement(
        types=_patterns(types),
        subject_type=subject_type,
        subject_id=subject_id,
        actor_id=actor_id,
        since=since,
        until=until,
        after_seq=after_seq,
        test=test,
    )
    if cursor:
        last = decode_cursor(cursor).get("seq")
        if not isinstance(last, int):
            raise InvalidInput("The cursor is not valid")
        stmt = stmt.where(EventModel.seq > last if order == "asc" else EventModel.seq < last)
    column = EventModel.seq.asc() if order == "asc" else EventModel.seq.desc()
    rows = list((await session.execute(stmt.order_by(column).limit(limit + 1))).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[Event](
        items=[Event.model_validate(envelope(row)) for row in rows],
        next_cursor=encode_cursor({"seq": rows[-1].seq}) if more else None,
    )


@router.get("/{event_id}", response_model=Event, summary="One event")
async def get_event(event_id: str, auth: EventsRead, session: TenantSession) -> Event:
    return Event.model_validate(envelope(await service.get(session, auth, event_id)))


@router.post(
    "/trigger",
    response_model=Event,
    status_code=201,
    summary="Emit a test event (marked test: true), delivered like any other",
)
async def trigger_event(
    body: EventTrigger, auth: EventsWrite, session: TenantSession, response: Response
) -> Event:
    row = await service.trigger(session, auth, body)
    response.headers["Location"] = f"/api/v1/events/{row.id}"
    return Event.model_validate(envelope(row))
