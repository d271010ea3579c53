from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import Form, Header, Response

from custos.auth import service
from custos.auth.dependencies import Authenticated, RuntimeDep, TenantSession
from custos.auth.schemas import (
    LoginRequest,
    Me,
    PasswordChange,
    RefreshRequest,
    TokenPair,
)
from custos.kit.routing import CustosRouter
from custos.models import Tenant, User

router = CustosRouter(prefix="/auth", tags=["auth"])
oauth_router = CustosRouter(prefix="/oauth", tags=["auth"])


@router.post("/login", response_model=TokenPair, summary="Sign in with email and password")
async def login(body: LoginRequest, runtime: RuntimeDep) -> TokenPair:
    return await service.login(runtime, body)


@router.post("/refresh", response_model=TokenPair, summary="Exchange a refresh token (rotates it)")
async def refresh(body: RefreshRequest, runtime: RuntimeDep) -> TokenPair:
    return await service.refresh(runtime, body.refresh_token)


@router.post("/logout", status_code=204, summary="End this session")
async def logout(
    auth: Authenticated,
    session: TenantSession,
    runtime: RuntimeDep,
) -> Response:
    await service.logout(runtime, session, auth)
    return Response(status_code=204)


@router.post("/password", status_code=204, summary="Change one's password; other sessions end")
async def change_password(
    body: PasswordChange, auth: Authenticated, session: TenantSession, runtime: RuntimeDep
) -> Response:
    await service.change_password(runtime, session, auth, body)
    return Response(status_code=204)


@router.get("/me", response_model=Me, summary="Who am I: principal, tenant, scopes")
async def me(auth: Authenticated, session: TenantSession) -> Me:
    slug = (
        await session.execute(sa.select(Tenant.slug).where(Tenant.id == auth.tenant_id))
    ).scalar_one()
    result = Me(
        kind=auth.kind.value,
        id=auth.id,
        tenant_id=auth.tenant_id,
        tenant_slug=slug,
        role=auth.role,
        scopes=sorted(auth.scopes),
        customer_id=auth.customer_id,
        session_id=auth.session_id,
    )
    if auth.kind == "user":
        user = await session.get(User, auth.id)
        if user is not None:
            result.email = user.email
            result.full_name = user.full_name
    return result


@oauth_router.post(
    "/token",
    response_model=TokenPair,
    summary="OAuth2 token endpoint (RFC 6749): password, client_credentials, refresh_token",
)
async def token(
    runtime: RuntimeDep,
    grant_type: Annotated[str, Form(max_length=40)],
    username: Annotated[str | None, Form(max_length=320)] = None,
    password: Annotated[str | None, Form(max_length=256)] = None,
    refresh_token: Annotated[str | None, Form(max_length=256)] = None,
    client_id: Annotated[str | None, Form(max_length=80)] = None,
    client_secret: Annotated[str | None, Form(max_length=256)] = None,
    scope: Annotated[str | None, Form(max_length=2000)] = None,
    tenant: Annotated[str | None, Form(max_length=63)] = None,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> TokenPair:
    basic = service.basic_credentials(authorization)
    if basic is not None:
        client_id, client_secret = basic
    return await service.token_grant(
        runtime,
        grant_type=grant_type,
        username=username,
        password=password,
        refresh_token=refresh_token,
        client_id=client_id,
        client_secret=client_secret,
        scope=scope,
        tenant=tenant,
    )
