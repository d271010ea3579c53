from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from custos.audit import service as audit
from custos.auth.cache import invalidate_after_commit
from custos.auth.principal import Principal
from custos.auth.scopes import Role
from custos.exceptions import Conflict, InvalidInput, NotFound
from custos.kit.ids import new_id
from custos.models import AuditHead, Tenant, TenantStatus
from custos.runtime import Runtime
from custos.tenant.repository import TenantRepository
from custos.tenant.schemas import TenantCreate, TenantUpdate
from custos.user import service as user_service
from custos.user.schemas import UserCreate


async def create(
    runtime: Runtime, session: AsyncSession, actor: Principal | None, body: TenantCreate
) -> Tenant:
    repo = TenantRepository(session)
    if await repo.by_slug(body.slug):
        raise Conflict(f"The slug {body.slug!r} is taken")
    if (body.admin_email is None) != (body.admin_password is None):
        raise InvalidInput("Give both admin_email and admin_password, or neither")
    tenant = Tenant(
        id=new_id("ten"),
        slug=body.slug,
        name=body.name,
        plan=body.plan,
        status=TenantStatus.active,
        settings=body.settings,
    )
    session.add(tenant)
    await session.flush()
    session.add(AuditHead(tenant_id=tenant.id, seq=0, hash=""))
    await session.flush()
    changes = {"slug": {"from": None, "to": tenant.slug}, "plan": {"from": None, "to": body.plan}}
    if body.admin_email and body.admin_password:
        admin = await user_service.create(
            runtime,
            session,
            actor,
            tenant.id,
            UserCreate(email=body.admin_email, password=body.admin_password, role=Role.admin),
            audited=False,
        )
        # One request, one audit row: the tenant's creation names its first admin.
        changes["admin_user_id"] = {"from": None, "to": admin.id}
    audit.record(
        session, actor, "tenant.created", "tenant", tenant.id, tenant_id=tenant.id, changes=changes
    )
    return tenant


async def get(session: AsyncSession, tenant_id: str) -> Tenant:
    tenant = await TenantRepository(session).get(tenant_id)
    if tenant is None:
        raise NotFound("No such tenant")
    return tenant


async def update(
    runtime: Runtime, session: AsyncSession, actor: Principal, tenant_id: str, body: TenantUpdate
) -> Tenant:
    tenant = await get(session, tenant_id)
    changes = body.model_dump(exclude_unset=True)
    for name in ("name", "plan", "status", "settings"):
        if name in changes and changes[name] is None:
            raise InvalidInput(f"{name} cannot be null")
    before = {"name": tenant.name, "plan": tenant.plan, "status": tenant.status}
    for name, value in changes.items():
        setattr(tenant, name, value)
    await session.flush()
    audited = audit.changed_fields(before, {k: v for k, v in changes.items() if k != "settings"})
    if "settings" in changes:
        audited["settings"] = {"from": "[object]", "to": "[object]"}
    audit.record(
        session, actor, "tenant.updated", "tenant", tenant.id, tenant_id=tenant.id, changes=audited
    )
    if {"status", "settings", "plan"} & changes.keys():
        # Suspension takes effect on every process at once, for every credential; cached
        # principals also carry the tenant's settings and plan (its rate limits).
        invalidate_after_commit(runtime.credentials, session, {f"tenant:{tenant.id}"})
    return tenant
