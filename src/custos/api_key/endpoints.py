from __future__ import annotations

from fastapi import Query

from custos.api_key import service
from custos.api_key.repository import ApiKeyRepository
from custos.api_key.schemas import (
    ApiKey,
    ApiKeyCreate,
    ApiKeyRotate,
    ApiKeyUpdate,
    ApiKeyWithSecret,
)
from custos.auth.dependencies import (
    ApiKeysRead,
    ApiKeysWrite,
    PlatformAdmin,
    PlatformSession,
    RuntimeDep,
    TenantSession,
)
from custos.kit.pagination import Cursor, Limit, Page, keyset_page
from custos.kit.routing import CustosRouter
from custos.models import ApiKey as ApiKeyModel
from custos.tenant import service as tenant_service

router = CustosRouter(prefix="/api-keys", tags=["api keys"])
admin_router = CustosRouter(prefix="/tenants/{tenant_id}/api-keys", tags=["platform: tenants"])


def _with_secret(issued: service.IssuedKey) -> ApiKeyWithSecret:
    return ApiKeyWithSecret.model_validate(
        {**ApiKey.model_validate(issued.record).model_dump(), "key": issued.secret}
    )


async def _page(
    session: TenantSession, tenant_id: str, limit: int, cursor: str | None, include_revoked: bool
) -> Page[ApiKey]:
    stmt = ApiKeyRepository(session, tenant_id).list_statement(include_revoked=include_revoked)
    items, next_cursor = await keyset_page(
        session, stmt, ApiKeyModel.id, limit=limit, cursor=cursor
    )
    return Page[ApiKey](items=[ApiKey.model_validate(k) for k in items], next_cursor=next_cursor)


@router.get("", response_model=Page[ApiKey], summary="List API keys")
async def list_keys(
    auth: ApiKeysRead,
    session: TenantSession,
    limit: Limit = 50,
    cursor: Cursor = None,
    include_revoked: bool = Query(False),
) -> Page[ApiKey]:
    return await _page(session, auth.tenant_id, limit, cursor, include_revoked)


@router.post(
    "",
    response_model=ApiKeyWithSecret,
    status_code=201,
    summary="Create an API key (the secret is shown once)",
)
async def create_key(
    body: ApiKeyCreate, auth: ApiKeysWrite, session: TenantSession, runtime: RuntimeDep
) -> ApiKeyWithSecret:
    return _with_secret(await service.create(runtime, session, auth, auth.tenant_id, body))


@router.get("/{key_id}", response_model=ApiKey, summary="Get an API key")
async def get_key(key_id: str, auth: ApiKeysRead, session: TenantSession) -> ApiKeyModel:
    return await service.get(session, auth.tenant_id, key_id)


@router.patch("/{key_id}", response_model=ApiKey, summary="Rename an API key or change its scopes")
async def update_key(
    key_id: str,
    body: ApiKeyUpdate,
    auth: ApiKeysWrite,
    session: TenantSession,
    runtime: RuntimeDep,
) -> ApiKeyModel:
    return await service.update(runtime, session, auth, key_id, body)


@router.delete("/{key_id}", response_model=ApiKey, summary="Revoke an API key")
async def revoke_key(
    key_id: str, auth: ApiKeysWrite, session: TenantSession, runtime: RuntimeDep
) -> ApiKeyModel:
    return await service.revoke(runtime, session, auth, key_id)


@router.post(
    "/{key_id}/rotate",
    response_model=ApiKeyWithSecret,
    summary="Issue a new secret; the old one works for the grace period",
)
async def rotate_key(
    key_id: str,
    auth: ApiKeysWrite,
    session: TenantSession,
    runtime: RuntimeDep,
    body: ApiKeyRotate | None = None,
) -> ApiKeyWithSecret:
    issued = await service.rotate(runtime, session, auth, key_id, body or ApiKeyRotate())
    return _with_secret(issued)


@admin_router.get("", response_model=Page[ApiKey], summary="List a tenant's API keys")
async def admin_list_keys(
    tenant_id: str,
    auth: PlatformAdmin,
    session: PlatformSession,
    limit: Limit = 50,
    cursor: Cursor = None,
    include_revoked: bool = Query(False),
) -> Page[ApiKey]:
    await tenant_service.get(session, tenant_id)
    return await _page(session, tenant_id, limit, cursor, include_revoked)


@admin_router.post(
    "",
    response_model=ApiKeyWithSecret,
    status_code=201,
    summary="Issue an API key for a tenant (the secret is shown once)",
)
async def admin_create_key(
    tenant_id: str,
    body: ApiKeyCreate,
    auth: PlatformAdmin,
    session: PlatformSession,
    runtime: RuntimeDep,
) -> ApiKeyWithSecret:
    await tenant_service.get(session, tenant_id)
    return _with_secret(await service.create(runtime, session, auth, tenant_id, body))
