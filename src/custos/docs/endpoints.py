from __future__ import annotations

from custos.auth.scopes import SCOPES, roles_holding
from custos.event.catalogue import documented
from custos.event.schemas import EventTypeDoc
from custos.kit.routing import CustosRouter
from custos.kit.schemas import Schema

router = CustosRouter(prefix="/docs", tags=["docs"])


class ScopeDoc(Schema):
    scope: str
    description: str
    roles: list[str]


@router.get(
    "/scopes", response_model=list[ScopeDoc], summary="Every scope and the roles holding it"
)
async def list_scopes() -> list[ScopeDoc]:
    return [
        ScopeDoc(scope=scope, description=text, roles=roles_holding(scope))
        for scope, text in SCOPES.items()
    ]


@router.get(
    "/events",
    response_model=list[EventTypeDoc],
    summary="Every event type: the JSON Schema of its message and an example",
)
async def list_event_types() -> list[EventTypeDoc]:
    return documented()
