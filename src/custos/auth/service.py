"""Sign-in, token refresh with rotation and reuse detection, sign-out, OAuth2 grants."""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta

from anyio import to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from custos.audit import service as audit
from custos.auth.cache import invalidate_after_commit
from custos.auth.principal import Principal, PrincipalKind
from custos.auth.repository import CredentialRepository
from custos.auth.schemas import LoginRequest, PasswordChange, TokenPair
from custos.auth.scopes import SCOPES, scopes_for
from custos.auth.verifier import Verifier
from custos.exceptions import (
    CustosError,
    Forbidden,
    InvalidInput,
    OAuthError,
    Unauthorized,
)
from custos.kit.context import request_context
from custos.kit.ids import new_id
from custos.kit.time import as_utc, utcnow
from custos.models import AuthSession, RefreshToken, Tenant, TenantStatus, User
from custos.runtime import Runtime

BAD_CREDENTIALS = "The email or password is wrong"


async def login(runtime: Runtime, body: LoginRequest) -> TokenPair:
    return await password_grant(runtime, body.identifier, body.password, body.tenant)


async def password_grant(
    runtime: Runtime,
    identifier: str,
    password: str,
    tenant_slug: str | None,
    scopes: frozenset[str] | None = None,
) -> TokenPair:
    ctx = request_context.get()
    throttle = runtime.login_throttle
    await throttle.hit_ip(ctx.ip or "unknown")
    account = throttle.account(f"{tenant_slug or ''}/{identifier}")
    await throttle.check_account(account)

    async with runtime.db.transaction(system=True) as session:
        candidates = await CredentialRepository(session).users_by_email(identifier, tenant_slug)
        matches = await _verify_passwords(runtime, candidates, password)
        if not matches:
            await throttle.record_failure(account)
            raise Unauthorized(BAD_CREDENTIALS)
        if len(matches) > 1:
            raise InvalidInput(
                "This email has accounts in several tenants: give the tenant's slug as `tenant`",
                errors=[{"loc": ["body", "tenant"], "msg": "required for this email"}],
            )
        user, tenant = matches[0]
        if not user.is_active or tenant.status != TenantStatus.active:
            raise Unauthorized("This account is disabled")
        user.last_login_at = utcnow()
        pair = await _start_session(runtime, session, user, scopes)
    return pair


async def _verify_passwords(
    runtime: Runtime, candidates: list[tuple[User, Tenant]], password: str
) -> list[tuple[User, Tenant]]:
    if not candidates:
        await to_thread.run_sync(runtime.passwords.verify, password, None)
        return []
    matches = []
    for user, tenant in candidates:
        if await to_thread.run_sync(runtime.passwords.verify, password, user.password_hash):
            matches.append((user, tenant))
    return matches


async def _start_session(
    runtime: Runtime, session: AsyncSession, user: User, scopes: frozenset[str] | None
) -> TokenPair:
    ctx = request_context.get()
    now = utcnow()
    auth_session = AuthSession(
        id=new_id("ses"),
        tenant_id=user.tenant_id,
        user_id=user.id,
        created_at=now,
        expires_at=now + timedelta(seconds=runtime.settings.refresh_token_ttl_seconds),
        ip=ctx.ip,
        user_agent=ctx.user_agent[:255] if ctx.user_agent else None,
    )
    session.add(auth_session)
    await session.flush()
    refresh = _new_refresh_token(runtime, session, auth_session)
    principal = _user_principal(user)
    audit.record(session, principal, "auth.login", "user", user.id)
    return _pair(runtime, user, auth_session.id, refresh, scopes)


def _new_refresh_token(runtime: Runtime, session: AsyncSession, auth_session: AuthSession) -> str:
    token, token_hash = runtime.tokens.new_refresh_token()
    session.add(
        RefreshToken(
            id=new_id("rtk"),
            tenant_id=auth_session.tenant_id,
            session_id=auth_session.id,
            token_hash=token_hash,
        )
    )
    return token


def _pair(
    runtime: Runtime,
    user: User,
    session_id: str,
    refresh: str,
    scopes: frozenset[str] | None,
) -> TokenPair:
    access = runtime.tokens.issue_access(
        subject=user.id,
        tenant_id=user.tenant_id,
        kind=PrincipalKind.user,
        session_id=session_id,
        scopes=scopes,
    )
    granted = (
        scopes
        if scopes is not None
        else scopes_for(user.role, platform_admin=user.is_platform_admin)
    )
    return TokenPair(
        access_token=access,
        expires_in=runtime.tokens.access_ttl,
        refresh_token=refresh,
        scope=" ".join(sorted(granted)),
    )


def _user_principal(user: User) -> Principal:
    return Principal(
        kind=PrincipalKind.user,
        id=user.id,
        tenant_id=user.tenant_id,
        scopes=scopes_for(user.role, platform_admin=user.is_platform_admin),
        role=user.role,
    )


class _RefreshReuse(Exception):
    def __init__(self, session_id: str) -> None:
        self.session_id = session_id


async def refresh(runtime: Runtime, refresh_token: str) -> TokenPair:
    """Exchange a refresh token for a new pair. Presenting an already-exchanged token means it
    was stolen or replayed: the whole session (token family) is revoked."""
    await runtime.login_throttle.hit_ip(request_context.get().ip or "unknown")
    token_hash = runtime.tokens.hash_refresh_token(refresh_token)
    reused: str | None = None
    async with runtime.db.transaction(system=True) as session:
        repo = CredentialRepository(session)
        found = await repo.refresh_token(token_hash)
        if found is None:
            raise Unauthorized("The refresh token is invalid")
        token, auth_session, user, tenant = found
        now = utcnow()
        if auth_session.revoked_at is not None or as_utc(auth_session.expires_at) <= now:
            raise Unauthorized("The refresh token is invalid")
        if token.rotated_at is not None or not await repo.mark_rotated(token.id, now):
            reused = auth_session.id
            await repo.revoke_session(auth_session.id, "refresh_token_reuse", now)
            audit.record(
                session,
                _user_principal(user),
                "auth.refresh_reuse_detected",
                "session",
                auth_session.id,
            )
            invalidate_after_commit(runtime.credentials, session, {f"session:{auth_session.id}"})
        elif not user.is_active or tenant.status != TenantStatus.active:
            raise Unauthorized("This account is disabled")
        else:
            new_token = _new_refresh_token(runtime, session, auth_session)
            audit.record(
                session, _user_principal(user), "auth.refreshed", "session", auth_session.id
            )
            pair = _pair(runtime, user, auth_session.id, new_token, None)
    if reused is not None:
        # Raised after the commit: the revocation must stick even though this request fails.
        raise Unauthorized("The refresh token was already used; the session has been revoked")
    return pair


async def logout(runtime: Runtime, session: AsyncSession, principal: Principal) -> None:
    if principal.kind != PrincipalKind.user or principal.session_id is None:
        raise Forbidden("Only a signed-in user has a session to end; revoke API keys instead")
    await CredentialRepository(session).revoke_session(principal.session_id, "logout", utcnow())
    audit.record(session, principal, "auth.logout", "session", principal.session_id)
    invalidate_after_commit(runtime.credentials, session, {f"session:{principal.session_id}"})


async def change_password(
    runtime: Runtime, session: AsyncSession, principal: Principal, body: PasswordChange
) -> None:
    if principal.kind != PrincipalKind.user:
        raise Forbidden("Only a signed-in user has a password")
    user = await session.get(User, principal.id)
    if user is None or user.tenant_id != principal.tenant_id:
        raise Unauthorized("The credentials are invalid, expired or revoked")
    ok = await to_thread.run_sync(
        runtime.passwords.verify, body.current_password, user.password_hash
    )
    if not ok:
        raise InvalidInput(
            "The current password is wrong",
            errors=[{"loc": ["body", "current_password"], "msg": "does not match"}],
        )
    user.password_hash = await to_thread.run_sync(runtime.passwords.hash, body.new_password)
    # Every other session ends; the one making the change stays signed in.
    await CredentialRepository(session).revoke_user_sessions(
        user.id, "password_changed", utcnow(), keep=principal.session_id
    )
    await session.flush()
    audit.record(
        session,
        principal,
        "user.password_changed",
        "user",
        user.id,
        changes={"password": {"from": "[secret]", "to": "[secret]"}},
    )
    invalidate_after_commit(runtime.credentials, session, {f"user:{user.id}"})


# -- OAuth2 token endpoint (RFC 6749) --------------------------------------------------------


def parse_scope(scope: str | None) -> frozenset[str] | None:
    if not scope:
        return None
    requested = frozenset(scope.split())
    unknown = requested - SCOPES.keys()
    if unknown:
        raise OAuthError("invalid_scope", f"Unknown scope: {sorted(unknown)[0]}")
    return requested


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "Malformed Basic credentials", status=401) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_client", "Malformed Basic credentials", status=401)
    return client_id, secret


async def token_grant(
    runtime: Runtime,
    *,
    grant_type: str,
    username: str | None,
    password: str | None,
    refresh_token: str | None,
    client_id: str | None,
    client_secret: str | None,
    scope: str | None,
    tenant: str | None,
) -> TokenPair:
    requested = parse_scope(scope)
    try:
        if grant_type == "password":
            if not username or not password:
                raise OAuthError("invalid_request", "username and password are required")
            pair = await password_grant(runtime, username.strip().lower(), password, tenant)
            return _narrow(runtime, pair, requested)
        if grant_type == "refresh_token":
            if not refresh_token:
                raise OAuthError("invalid_request", "refresh_token is required")
            return _narrow(runtime, await refresh(runtime, refresh_token), requested)
        if grant_type == "client_credentials":
            if not client_id or not client_secret:
                raise OAuthError(
                    "invalid_client", "client_id and client_secret are required", status=401
                )
            return await _client_credentials(runtime, client_id, client_secret, requested)
    except Unauthorized as exc:
        raise OAuthError("invalid_grant", exc.detail) from None
    raise OAuthError(
        "unsupported_grant_type", "grant_type must be password, refresh_token or client_credentials"
    )


def _narrow(runtime: Runtime, pair: TokenPair, requested: frozenset[str] | None) -> TokenPair:
    if requested is None:
        return pair
    claims = runtime.tokens.decode_access(pair.access_token)
    held = frozenset((pair.scope or "").split())
    if not requested <= held:
        raise OAuthError("invalid_scope", "The requested scope exceeds what the user holds")
    access = runtime.tokens.issue_access(
        subject=claims.subject,
        tenant_id=claims.tenant_id,
        kind=claims.kind,
        session_id=claims.session_id,
        scopes=requested,
    )
    return pair.model_copy(update={"access_token": access, "scope": " ".join(sorted(requested))})


async def _client_credentials(
    runtime: Runtime, client_id: str, client_secret: str, requested: frozenset[str] | None
) -> TokenPair:
    """An API key is an OAuth client: its id is the client_id, the key itself the secret."""
    await runtime.login_throttle.hit_ip(request_context.get().ip or "unknown")
    try:
        principal = await Verifier(runtime).authenticate(client_secret)
    except CustosError:
        principal = None
    if principal is None or principal.kind != PrincipalKind.api_key or principal.id != client_id:
        raise OAuthError("invalid_client", "Unknown client or wrong secret", status=401)
    if requested is not None and not requested <= principal.scopes:
        raise OAuthError("invalid_scope", "The requested scope exceeds the client's scopes")
    granted = requested if requested is not None else principal.scopes
    async with runtime.db.transaction(tenant_id=principal.tenant_id) as session:
        audit.record(session, principal, "auth.token_issued", "api_key", principal.id)
    access = runtime.tokens.issue_access(
        subject=principal.id,
        tenant_id=principal.tenant_id,
        kind=PrincipalKind.api_key,
        scopes=requested,
    )
    return TokenPair(
        access_token=access,
        expires_in=runtime.tokens.access_ttl,
        scope=" ".join(sorted(granted)),
    )
