"""FastAPI dependencies: who is calling, what they may do, and their tenant's transaction.

An endpoint states its permission as a typed alias, e.g. `auth: CustomersWrite`; the
`required_scopes` attribute on the dependency lets tests build the role-by-route matrix.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from custos.auth.principal import Principal
from custos.auth.scopes import PLATFORM_ADMIN, SCOPES
from custos.auth.verifier import Verifier
from custos.exceptions import Forbidden, Unauthorized
from custos.runtime import Runtime

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Reads `Authorization: Bearer`; declared as OAuth2 so Swagger's Authorize button can sign in
# with a password. The schema also offers a plain bearer scheme for pasting an API key
# (added in app.py), without a second dependency on every request.
oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/api/v1/oauth/token", scopes=SCOPES, auto_error=False
)


async def get_runtime(request: Request) -> Runtime:
    # async on purpose: FastAPI runs plain `def` dependencies in a worker thread.
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def authenticate(
    request: Request,
    runtime: RuntimeDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> Principal:
    if not token:
        raise Unauthorized("Send `Authorization: Bearer <access token or API key>`")
    principal = await Verifier(runtime).authenticate(token)
    request.state.principal = principal
    structlog.contextvars.bind_contextvars(tenant_id=principal.tenant_id)
    return principal


Authenticated = Annotated[Principal, Depends(authenticate)]


def require_scopes(*scopes: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scopes {unknown}")

    async def dependency(principal: Authenticated) -> Principal:
        missing = [s for s in scopes if s not in principal.scopes]
        if missing:
            raise Forbidden(f"This needs the scope {', '.join(missing)}")
        return principal

    dependency.required_scopes = scopes  # type: ignore[attr-defined]
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

UsersRead = Annotated[Principal, Depends(require_scopes("users:read"))]
UsersWrite = Annotated[Principal, Depends(require_scopes("users:write"))]
ApiKeysRead = Annotated[Principal, Depends(require_scopes("api_keys:read"))]
ApiKeysWrite = Annotated[Principal, Depends(require_scopes("api_keys:write"))]
AuditRead = Annotated[Principal, Depends(require_scopes("audit:read"))]
