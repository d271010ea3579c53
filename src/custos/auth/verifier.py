"""Turns a bearer credential (access JWT or API key) into a Principal, from cache when it can."""

from __future__ import annotations

from datetime import datetime

from custos.auth.cache import Verdict
from custos.auth.principal import Principal, PrincipalKind
from custos.auth.repository import CredentialRepository
from custos.auth.scopes import scopes_for
from custos.auth.tokens import looks_like_jwt
from custos.exceptions import Unauthorized
from custos.kit.time import as_utc, utcnow
from custos.models import ApiKey, Tenant, TenantStatus
from custos.runtime import Runtime

INVALID = "The credentials are invalid, expired or revoked"


def key_tags(key_id: str, tenant_id: str) -> frozenset[str]:
    return frozenset({f"key:{key_id}", f"tenant:{tenant_id}"})


def _earliest(*moments: datetime | None) -> datetime | None:
    present = [as_utc(m) for m in moments if m is not None]
    return min(present) if present else None


def _key_principal(key: ApiKey, tenant: Tenant, key_hash: str | None) -> Principal | None:
    if key.revoked_at is not None or tenant.status != TenantStatus.active:
        return None
    grace_until = None
    if key_hash is not None and key.previous_key_hash == key_hash:
        grace_until = key.previous_valid_until
        if grace_until is None:
            return None
    return Principal(
        kind=PrincipalKind.api_key,
        id=key.id,
        tenant_id=key.tenant_id,
        scopes=frozenset(key.scopes),
        valid_until=_earliest(key.expires_at, grace_until),
        tenant_settings=tenant.settings,
        tenant_plan=tenant.plan,
        tenant_rate_limits=tenant.rate_limits,
        rate_limits=key.rate_limits,
    )


class Verifier:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def authenticate(self, token: str) -> Principal:
        if looks_like_jwt(token):
            return await self._from_access_token(token)
        secrets = self.runtime.key_secrets
        if not secrets.well_formed(token):
            raise Unauthorized(INVALID)
        key_hash = secrets.hash(token)
        principal = await self.runtime.credentials.get_or_load(
            f"k:{key_hash}", lambda: self._load_key(key_hash)
        )
        principal = self._still_valid(principal)
        self.runtime.last_used.touch(principal.id)
        return principal

    async def _from_access_token(self, token: str) -> Principal:
        claims = self.runtime.tokens.decode_access(token)
        if claims.kind == PrincipalKind.user and claims.session_id:
            sid = claims.session_id
            principal = await self.runtime.credentials.get_or_load(
                f"s:{sid}", lambda: self._load_session(sid)
            )
        elif claims.kind == PrincipalKind.api_key:
            key_id = claims.subject
            principal = await self.runtime.credentials.get_or_load(
                f"c:{key_id}", lambda: self._load_key_by_id(key_id)
            )
        else:
            raise Unauthorized(INVALID)
        principal = self._still_valid(principal)
        if principal.id != claims.subject or principal.tenant_id != claims.tenant_id:
            raise Unauthorized(INVALID)
        if claims.scopes is not None:
            principal = principal.narrowed(claims.scopes)
        return principal

    @staticmethod
    def _still_valid(principal: Principal | None) -> Principal:
        if principal is None:
            raise Unauthorized(INVALID)
        if principal.valid_until is not None and principal.valid_until <= utcnow():
            raise Unauthorized(INVALID)
        return principal

    async def _load_key(self, key_hash: str) -> Verdict:
        async with self.runtime.db.transaction(system=True, write=False) as session:
            found = await CredentialRepository(session).api_key_by_hash(key_hash)
        if found is None:
            return None, frozenset()
        key, tenant = found
        return _key_principal(key, tenant, key_hash), key_tags(key.id, key.tenant_id)

    async def _load_key_by_id(self, key_id: str) -> Verdict:
        async with self.runtime.db.transaction(system=True, write=False) as session:
            found = await CredentialRepository(session).api_key_by_id(key_id)
        if found is None:
            return None, frozenset()
        key, tenant = found
        return _key_principal(key, tenant, None), key_tags(key.id, key.tenant_id)

    async def _load_session(self, session_id: str) -> Verdict:
        async with self.runtime.db.transaction(system=True, write=False) as session:
            found = await CredentialRepository(session).session_with_user(session_id)
        if found is None:
            return None, frozenset()
        auth_session, user, tenant = found
        tags = frozenset(
            {f"user:{user.id}", f"session:{auth_session.id}", f"tenant:{user.tenant_id}"}
        )
        if (
            auth_session.revoked_at is not None
            or not user.is_active
            or tenant.status != TenantStatus.active
        ):
            return None, tags
        principal = Principal(
            kind=PrincipalKind.user,
            id=user.id,
            tenant_id=user.tenant_id,
            scopes=scopes_for(user.role, platform_admin=user.is_platform_admin),
            role=user.role,
            session_id=auth_session.id,
            customer_id=user.customer_id,
            valid_until=auth_session.expires_at,
            tenant_settings=tenant.settings,
            tenant_plan=tenant.plan,
            tenant_rate_limits=tenant.rate_limits,
        )
        return principal, tags
