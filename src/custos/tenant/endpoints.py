from __future__ import annotations

from fastapi import Query

from custos.auth.dependencies import PlatformAdmin, PlatformSession, RuntimeDep
from custos.kit.pagination import Cursor, Limit, Page, keyset_page
from custos.kit.routing import CustosRouter
from custos.models import Tenant as TenantModel
from custos.models import TenantPlan, TenantStatus
from custos.tenant import service
from custos.tenant.repository import TenantRepository
from custos.tenant.schemas import Tenant, TenantCreate, TenantUpdate

router = CustosRouter(prefix="/tenants", tags=["platform: tenants"])


@router.get("", response_model=Page[Tenant], summary="List tenants")
async def list_tenants(
    auth: PlatformAdmin,
    session: PlatformSession,
    limit: Limit = 50,
    cursor: Cursor = None,
    status: TenantStatus | None = Query(None),
    plan: TenantPlan | None = Query(None),
) -> Page[Tenant]:
    stmt = TenantRepository(session).list_statement(status=status, plan=plan)
    items, next_cursor = await keyset_page(
        session, stmt, TenantModel.id, limit=limit, cursor=cursor
    )
    return Page[Tenant](items=[Tenant.model_validate(t) for t in items], next_cursor=next_cursor)


@router.post("", response_model=Tenant, status_code=201, summary="Create a tenant")
async def create_tenant(
    body: TenantCreate, auth: PlatformAdmin, session: PlatformSession, runtime: RuntimeDep
) -> TenantModel:
    return await service.create(runtime, session, auth, body)


@router.get("/{tenant_id}", response_model=Tenant, summary="Get a tenant")
async def get_tenant(tenant_id: str, auth: PlatformAdmin, session: PlatformSession) -> TenantModel:
    return await service.get(session, tenant_id)


@router.patch(
    "/{tenant_id}", response_model=Tenant, summary="Change a tenant's name, plan, status, settings"
)
async def update_tenant(
    tenant_id: str,
    body: TenantUpdate,
    auth: PlatformAdmin,
    session: PlatformSession,
    runtime: RuntimeDep,
) -> TenantModel:
    return await service.update(runtime, session, auth, tenant_id, body)
