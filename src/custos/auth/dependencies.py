"""FastAPI dependencies: who is calling, what they may do, and their tenant's transaction.

An endpoint states its permission as a typed alias, e.g. `auth: CustomersWrite`; the
`required_scopes` attribute on the dependency lets tests build the role-by-route matrix.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from sqlalchemy.ext.asyncio import AsyncSession

from custos.auth.principal import Principal
from custos.auth.scopes import PLATFORM_ADMIN, SCOPES
from custos.auth.verifier import Verifier
from custos.exceptions import Forbidden, Unauthorized
from custos.kit.routing import IDENTIFIES_CALLER
from custos.runtime import Runtime

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def runtime_of(request: Request) -> Runtime:
    """The runtime, for the hottest endpoints: taking it from the request instead of
    `RuntimeDep` is one dependency fewer for FastAPI to solve on every call."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_runtime(request: Request) -> Runtime:
    # async on purpose: FastAPI runs plain `def` dependencies in a worker thread.
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def authenticate(request: Request) -> Principal:
    # One dependency that reads the header itself: each extra dependency costs every
    # authenticated request tens of microseconds. The OpenAPI security schemes are
    # documented from the routes' declared policy instead (see app.py).
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:
        return known  # a scope check called it already in this request
    runtime: Runtime = request.app.state.runtime
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    try:
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Send `Authorization: Bearer <access token or API key>`")
        principal = await Verifier(runtime).authenticate(token.strip())
    except Unauthorized:
        # A refused credential counts against the caller's address, like a public route:
        # guessing keys is limited per address (429 once over).
        await runtime.traffic.address()
        raise
    request.state.principal = principal
    structlog.contextvars.bind_contextvars(tenant_id=principal.tenant_id)
    # The caller's and the tenant's limits, now that the cached principal names them.
    await runtime.traffic.principal(principal)
    return principal


setattr(authenticate, IDENTIFIES_CALLER, True)


Authenticated = Annotated[Principal, Depends(authenticate)]


def require_scopes(*scopes: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scopes {unknown}")

    # Calls authenticate itself rather than depending on it: one level less for FastAPI to
    # solve on every request (authenticate answers a second caller from request.state).
    async def dependency(request: Request) -> Principal:
        principal = await authenticate(request)
        missing = [s for s in scopes if s not in principal.scopes]
        if missing:
            raise Forbidden(f"This needs the scope {', '.join(missing)}")
        return principal

    dependency.required_scopes = scopes  # type: ignore[attr-defined]
    setattr(dependency, IDENTIFIES_CALLER, True)
    return dependency


PlatformAdmin = Annotated[Principal, Depends(require_scopes(PLATFORM_ADMIN))]


async def tenant_session(
    request: Request, runtime: RuntimeDep, principal: Authenticated
) -> AsyncIterator[AsyncSession]:
    async with runtime.db.transaction(
        tenant_id=principal.tenant_id, write=request.method not in SAFE_METHODS
    ) as session:
        yield session


async def platform_session(
    request: Request,
    runtime: RuntimeDep,
    _principal: PlatformAdmin,
) -> AsyncIterator[AsyncSession]:
    async with runtime.db.transaction(
        system=True, write=request.method not in SAFE_METHODS
    ) as session:
        yield session


# scope="function": the transaction commits when the endpoint returns, before the response
# is sent, so a client that saw 2xx can rely on the write being durable.
TenantSession = Annotated[AsyncSession, Depends(tenant_session, scope="function")]
PlatformSession = Annotated[AsyncSession, Depends(platform_session, scope="function")]

CustomersRead = Annotated[Principal, Depends(require_scopes("customers:read"))]
CustomersWrite = Annotated[Principal, Depends(require_scopes("customers:write"))]
SelfRead = Annotated[Principal, Depends(require_scopes("self:read"))]
SelfWrite = Annotated[Principal, Depends(require_scopes("self:write"))]
InternalWrite = Annotated[Principal, Depends(require_scopes("internal:write"))]
UsersRead = Annotated[Principal, Depends(require_scopes("users:read"))]
UsersWrite = Annotated[Principal, Depends(require_scopes("users:write"))]
ApiKeysRead = Annotated[Principal, Depends(require_scopes("api_keys:read"))]
ApiKeysWrite = Annotated[Principal, Depends(require_scopes("api_keys:write"))]
FeedbackRead = Annotated[Principal, Depends(require_scopes("feedback:read"))]
FeedbackWrite = Annotated[Principal, Depends(require_scopes("feedback:write"))]
BulkRead = Annotated[Principal, Depends(require_scopes("bulk:read"))]
BulkWrite = Annotated[Principal, Depends(require_scopes("bulk:write"))]
AuditRead = Annotated[Principal, Depends(require_scopes("audit:read"))]
PrivacyRead = Annotated[Principal, Depends(require_scopes("privacy:read"))]
PrivacyWrite = Annotated[Principal, Depends(require_scopes("privacy:write"))]
PrivacyErase = Annotated[Principal, Depends(require_scopes("privacy:erase"))]
PrivacyReidentify = Annotated[Principal, Depends(require_scopes("privacy:reidentify"))]
ConsentsRead = Annotated[Principal, Depends(require_scopes("consents:read"))]
ConsentsWrite = Annotated[Principal, Depends(require_scopes("consents:write"))]
UsageRead = Annotated[Principal, Depends(require_scopes("usage:read"))]
CacheAdmin = Annotated[Principal, Depends(require_scopes("cache:admin"))]
EventsRead = Annotated[Principal, Depends(require_scopes("events:read"))]
EventsWrite = Annotated[Principal, Depends(require_scopes("events:write"))]
WebhooksRead = Annotated[Principal, Depends(require_scopes("webhooks:read"))]
WebhooksWrite = Annotated[Principal, Depends(require_scopes("webhooks:write"))]


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    authenticated: bool
    scopes: tuple[str, ...]


def route_policy(dependant: Dependant) -> RoutePolicy:
    """What a route demands, read from its dependency tree (for docs and the access tests)."""
    scopes: list[str] = []
    authenticated = False
    stack = [dependant]
    while stack:
        current = stack.pop()
        scopes.extend(getattr(current.call, "required_scopes", ()))
        authenticated = authenticated or getattr(current.call, IDENTIFIES_CALLER, False)
        stack.extend(current.dependencies)
    return RoutePolicy(authenticated=authenticated, scopes=tuple(dict.fromkeys(scopes)))
