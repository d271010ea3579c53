from __future__ import annotations

from typing import Any

from anyio import to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from custos.audit import service as audit
from custos.auth.cache import invalidate_after_commit
from custos.auth.principal import Principal
from custos.auth.repository import CredentialRepository
from custos.auth.scopes import scopes_for
from custos.customer.repository import CustomerRepository
from custos.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from custos.kit.ids import new_id
from custos.kit.time import utcnow
from custos.models import User
from custos.runtime import Runtime
from custos.user.repository import UserRepository
from custos.user.schemas import UserCreate, UserUpdate


def ensure_can_grant(actor: Principal | None, role: str, *, platform_admin: bool = False) -> None:
    """Nobody hands out a role (or scopes) wider than what they hold themselves."""
    if actor is None or actor.is_platform_admin:  # the CLI or a platform operator
        return
    # self:* scopes reach only the grantee's own record, so they widen nobody's access.
    wanted = {
        s for s in scopes_for(role, platform_admin=platform_admin) if not s.startswith("self:")
    }
    beyond = sorted(wanted - actor.scopes)
    if beyond:
        raise Forbidden(f"You cannot grant the role {role!r}: it holds scopes you do not hold")


async def create(
    runtime: Runtime,
    session: AsyncSession,
    actor: Principal | None,
    tenant_id: str,
    body: UserCreate,
    *,
    platform_admin: bool = False,
    audited: bool = True,
) -> User:
    """`audited=False` when the caller's own audit row already records this user."""
    ensure_can_grant(actor, body.role, platform_admin=platform_admin)
    repo = UserRepository(session, tenant_id)
    if await repo.email_taken(body.email):
        raise Conflict("A user with this email already exists in this tenant")
    await _ensure_customer_exists(session, tenant_id, body.customer_id)
    password_hash = await to_thread.run_sync(runtime.passwords.hash, body.password)
    user = User(
        id=new_id("usr"),
        tenant_id=tenant_id,
        email=body.email,
        full_name=body.full_name,
        password_hash=password_hash,
        role=body.role,
        is_active=True,
        is_platform_admin=platform_admin,
        customer_id=body.customer_id,
    )
    session.add(user)
    await session.flush()
    if not audited:
        return user
    audit.record(
        session,
        actor,
        "user.created",
        "user",
        user.id,
        tenant_id=tenant_id,
        changes=audit.changed_fields(
            {}, {"email": user.email, "role": user.role, "platform_admin": platform_admin}
        ),
    )
    return user


async def get(session: AsyncSession, actor: Principal, user_id: str) -> User:
    user = await UserRepository(session, actor.tenant_id).get(user_id)
    if user is None:
        raise NotFound("No such user")
    return user


async def update(
    runtime: Runtime, session: AsyncSession, actor: Principal, user_id: str, body: UserUpdate
) -> User:
    user = await get(session, actor, user_id)
    changes = body.model_dump(exclude_unset=True)
    if user.id == actor.id and ({"role", "is_active"} & changes.keys()):
        raise Forbidden("You cannot change your own role or deactivate yourself")
    # Changing someone means holding at least what they hold, before and after.
    ensure_can_grant(actor, user.role, platform_admin=user.is_platform_admin)
    if changes.get("role") is not None:
        ensure_can_grant(actor, changes["role"])
    for name in ("role", "is_active"):
        if name in changes and changes[name] is None:
            raise InvalidInput(f"{name} cannot be null")

    before: dict[str, Any] = {
        "full_name": user.full_name,
        "role": user.role,
        "is_active": user.is_active,
        "customer_id": user.customer_id,
    }
    if changes.get("customer_id"):
        await _ensure_customer_exists(session, actor.tenant_id, changes["customer_id"])
    password = changes.pop("password", None)
    for name, value in changes.items():
        setattr(user, name, value)
    revoke_sessions = password is not None or changes.get("is_active") is False
    audited = audit.changed_fields(before, changes)
    if password is not None:
        user.password_hash = await to_thread.run_sync(runtime.passwords.hash, password)
        audited["password"] = {"from": "[secret]", "to": "[secret]"}
    if revoke_sessions:
        await CredentialRepository(session).revoke_user_sessions(user.id, "user_changed", utcnow())
    await session.flush()
    audit.record(session, actor, "user.updated", "user", user.id, changes=audited)
    invalidate_after_commit(runtime.credentials, session, {f"user:{user.id}"})
    return user


async def delete(runtime: Runtime, session: AsyncSession, actor: Principal, user_id: str) -> None:
    user = await get(session, actor, user_id)
    if user.id == actor.id:
        raise Forbidden("You cannot delete yourself")
    ensure_can_grant(actor, user.role, platform_admin=user.is_platform_admin)
    await session.delete(user)
    await session.flush()
    audit.record(session, actor, "user.deleted", "user", user.id)
    invalidate_after_commit(runtime.credentials, session, {f"user:{user.id}"})


async def _ensure_customer_exists(
    session: AsyncSession, tenant_id: str, customer_id: str | None
) -> None:
    if customer_id and await CustomerRepository(session, tenant_id).get(customer_id) is None:
        raise InvalidInput(
            "No such customer in this tenant",
            errors=[{"loc": ["body", "customer_id"], "msg": "no such customer"}],
        )
