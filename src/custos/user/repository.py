from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from custos.models import User


class UserRepository:
    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id

    async def get(self, user_id: str) -> User | None:
        stmt = sa.select(User).where(User.tenant_id == self.tenant_id, User.id == user_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def email_taken(self, email: str) -> bool:
        stmt = sa.select(User.id).where(User.tenant_id == self.tenant_id, User.email == email)
        return (await self.session.execute(stmt)).first() is not None

    def list_statement(
        self, *, role: str | None = None, is_active: bool | None = None
    ) -> sa.Select[tuple[User]]:
        stmt = sa.select(User).where(User.tenant_id == self.tenant_id)
        if role:
            stmt = stmt.where(User.role == role)
        if is_active is not None:
            stmt = stmt.where(User.is_active == is_active)
        return stmt
