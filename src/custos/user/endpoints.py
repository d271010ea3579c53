from __future__ import annotations

from fastapi import Query, Response

from custos.auth.dependencies import RuntimeDep, TenantSession, UsersRead, UsersWrite
from custos.auth.scopes import Role
from custos.kit.pagination import Cursor, Limit, Page, keyset_page
from custos.kit.routing import CustosRouter
from custos.models import User as UserModel
from custos.user import service
from custos.user.repository import UserRepository
from custos.user.schemas import User, UserCreate, UserUpdate

router = CustosRouter(prefix="/users", tags=["users"])


@router.get("", response_model=Page[User], summary="List the tenant's users")
async def list_users(
    auth: UsersRead,
    session: TenantSession,
    limit: Limit = 50,
    cursor: Cursor = None,
    role: Role | None = Query(None),
    is_active: bool | None = Query(None),
) -> Page[User]:
    stmt = UserRepository(session, auth.tenant_id).list_statement(role=role, is_active=is_active)
    items, next_cursor = await keyset_page(session, stmt, UserModel.id, limit=limit, cursor=cursor)
    return Page[User](items=[User.model_validate(u) for u in items], next_cursor=next_cursor)


@router.post("", response_model=User, status_code=201, summary="Create a user")
async def create_user(
    body: UserCreate, auth: UsersWrite, session: TenantSession, runtime: RuntimeDep
) -> UserModel:
    return await service.create(runtime, session, auth, auth.tenant_id, body)


@router.get("/{user_id}", response_model=User, summary="Get a user")
async def get_user(user_id: str, auth: UsersRead, session: TenantSession) -> UserModel:
    return await service.get(session, auth, user_id)


@router.patch("/{user_id}", response_model=User, summary="Change a user's role, status, password")
async def update_user(
    user_id: str, body: UserUpdate, auth: UsersWrite, session: TenantSession, runtime: RuntimeDep
) -> UserModel:
    return await service.update(runtime, session, auth, user_id, body)


@router.delete("/{user_id}", status_code=204, summary="Delete a user and end their sessions")
async def delete_user(
    user_id: str, auth: UsersWrite, session: TenantSession, runtime: RuntimeDep
) -> Response:
    await service.delete(runtime, session, auth, user_id)
    return Response(status_code=204)
