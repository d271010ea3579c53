"""Queries the auth feature makes. Credential look-ups span tenants by nature (a key or a
login names its tenant only once found), so they take a system session, asked for by name."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from custos.models import ApiKey, AuthSession, RefreshToken, Tenant, User


class CredentialRepository:
    def __init__(self, system_session: AsyncSession) -> None:
        self.session = system_session

    async def api_key_by_hash(self, key_hash: str) -> tuple[ApiKey, Tenant] | None:
        stmt = (
            sa.select(ApiKey, Tenant)
            .join(Tenant, Tenant.id == ApiKey.tenant_id)
            .where(sa.or_(ApiKey.key_hash == key_hash, ApiKey.previous_key_hash == key_hash))
        )
        row = (await self.session.execute(stmt)).first()
        return (row[0], row[1]) if row else None

    async def api_key_by_id(self, key_id: str) -> tuple[ApiKey, Tenant] | None:
        stmt = (
            sa.select(ApiKey, Tenant)
            .join(Tenant, Tenant.id == ApiKey.tenant_id)
            .where(ApiKey.id == key_id)
        )
        row = (await self.session.execute(stmt)).first()
        return (row[0], row[1]) if row else None

    async def session_with_user(self, session_id: str) -> tuple[AuthSession, User, Tenant] | None:
        stmt = (
            sa.select(AuthSession, User, Tenant)
            .join(User, User.id == AuthSession.user_id)
            .join(Tenant, Tenant.id == AuthSession.tenant_id)
            .where(AuthSession.id == session_id)
        )
        row = (await self.session.execute(stmt)).first()
        return (row[0], row[1], row[2]) if row else None

    async def users_by_email(
        self, email: str, tenant_slug: str | None
    ) -> list[tuple[User, Tenant]]:
        stmt = (
            sa.select(User, Tenant)
            .join(Tenant, Tenant.id == User.tenant_id)
            .where(User.email == email)
            .order_by(User.id)
            .limit(20)
        )
        if tenant_slug:
            stmt = stmt.where(Tenant.slug == tenant_slug)
        return [(u, t) for u, t in (await self.session.execute(stmt)).all()]

    async def refresh_token(
        self, token_hash: str
    ) -> tuple[RefreshToken, AuthSession, User, Tenant] | None:
        stmt = (
            sa.select(RefreshToken, AuthSession, User, Tenant)
            .join(AuthSession, AuthSession.id == RefreshToken.session_id)
            .join(User, User.id == AuthSession.user_id)
            .join(Tenant, Tenant.id == AuthSession.tenant_id)
            .where(RefreshToken.token_hash == token_hash)
        )
        row = (await self.session.execute(stmt)).first()
        return (row[0], row[1], row[2], row[3]) if row else None

    async def mark_rotated(self, token_id: str, when: datetime) -> bool:
        """Atomically claim a refresh token; False when another request already had it."""
        result = await self.session.execute(
            sa.update(RefreshToken)
            .where(RefreshToken.id == token_id, RefreshToken.rotated_at.is_(None))
            .values(rotated_at=when)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def revoke_session(self, session_id: str, reason: str, when: datetime) -> None:
        await self.session.execute(
            sa.update(AuthSession)
            .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=when, revoked_reason=reason)
        )

    async def revoke_user_sessions(
        self, user_id: str, reason: str, when: datetime, *, keep: str | None = None
    ) -> None:
        stmt = sa.update(AuthSession).where(
            AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)
        )
        if keep:
            stmt = stmt.where(AuthSession.id != keep)
        await self.session.execute(stmt.values(revoked_at=when, revoked_reason=reason))
