from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from custos import events
from custos.api_key.repository import ApiKeyRepository
from custos.api_key.schemas import ApiKey as ApiKeyOut
from custos.api_key.schemas import ApiKeyCreate, ApiKeyPayload, ApiKeyRotate, ApiKeyUpdate
from custos.audit import service as audit
from custos.auth.cache import invalidate_after_commit
from custos.auth.principal import Principal
from custos.event import service as event_log
from custos.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from custos.kit.ids import new_id
from custos.kit.time import as_utc, utcnow
from custos.models import ApiKey
from custos.runtime import Runtime


@dataclass(frozen=True, slots=True)
class IssuedKey:
    record: ApiKey
    secret: str


def _emit(
    session: AsyncSession, actor: Principal | None, event_type: events.EventType, key: ApiKey
) -> None:
    payload = ApiKeyPayload(api_key=ApiKeyOut.model_validate(key)).model_dump(mode="json")
    event_log.emit(
        session,
        actor,
        event_type,
        payload,
        subject_type="api_key",
        subject_id=key.id,
        tenant_id=key.tenant_id,
    )


def ensure_within(actor: Principal | None, scopes: list[str]) -> None:
    """A key never carries a scope its creator does not hold."""
    if actor is None or actor.is_platform_admin:
        return
    beyond = sorted(set(scopes) - actor.scopes)
    if beyond:
        raise Forbidden(f"You cannot grant scopes you do not hold: {', '.join(beyond)}")


async def create(
    runtime: Runtime,
    session: AsyncSession,
    actor: Principal | None,
    tenant_id: str,
    body: ApiKeyCreate,
) -> IssuedKey:
    ensure_within(actor, body.scopes)
    if body.expires_at is not None and as_utc(body.expires_at) <= utcnow():
        raise InvalidInput(
            "expires_at is in the past",
            errors=[{"loc": ["body", "expires_at"], "msg": "must be in the future"}],
        )
    secret = runtime.key_secrets.generate()
    key = ApiKey(
        id=new_id("key"),
        tenant_id=tenant_id,
        name=body.name,
        display_prefix=secret.display_prefix,
        key_hash=secret.key_hash,
        scopes=body.scopes,
        expires_at=as_utc(body.expires_at) if body.expires_at else None,
        created_by=actor.id if actor else None,
    )
    key.rate_limits = body.rate_limits.model_dump() if body.rate_limits else None
    session.add(key)
    await session.flush()
    audit.record(
        session,
        actor,
        "api_key.created",
        "api_key",
        key.id,
        tenant_id=tenant_id,
        changes={
            "name": {"from": None, "to": key.name},
            "scopes": {"from": None, "to": key.scopes},
            **({"rate_limits": {"from": None, "to": key.rate_limits}} if key.rate_limits else {}),
        },
    )
    _emit(session, actor, events.API_KEY_CREATED, key)
    return IssuedKey(record=key, secret=secret.key)


async def get(session: AsyncSession, tenant_id: str, key_id: str) -> ApiKey:
    key = await ApiKeyRepository(session, tenant_id).get(key_id)
    if key is None:
        raise NotFound("No such API key")
    return key


async def update(
    runtime: Runtime, session: AsyncSession, actor: Principal, key_id: str, body: ApiKeyUpdate
) -> ApiKey:
    key = await get(session, actor.tenant_id, key_id)
    _ensure_live(key)
    changes = body.model_dump(exclude_unset=True, exclude_none=True, exclude={"rate_limits"})
    if "scopes" in changes:
        ensure_within(actor, changes["scopes"])
    before = {"name": key.name, "scopes": key.scopes, "rate_limits": key.rate_limits}
    if "rate_limits" in body.model_fields_set:
        # A null removes the key's own limits: unlike the other fields, it is a value here.
        key.rate_limits = body.rate_limits.model_dump() if body.rate_limits else None
        changes["rate_limits"] = key.rate_limits
    for name, value in changes.items():
        if name != "rate_limits":
            setattr(key, name, value)
    await session.flush()
    audit.record(
        session,
        actor,
        "api_key.updated",
        "api_key",
        key.id,
        changes=audit.changed_fields(before, changes),
    )
    invalidate_after_commit(runtime.credentials, session, {f"key:{key.id}"})
    return key


async def revoke(runtime: Runtime, session: AsyncSession, actor: Principal, key_id: str) -> ApiKey:
    key = await get(session, actor.tenant_id, key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.flush()
        audit.record(session, actor, "api_key.revoked", "api_key", key.id)
        _emit(session, actor, events.API_KEY_REVOKED, key)
        invalidate_after_commit(runtime.credentials, session, {f"key:{key.id}"})
    return key


async def rotate(
    runtime: Runtime, session: AsyncSession, actor: Principal, key_id: str, body: ApiKeyRotate
) -> IssuedKey:
    key = await get(session, actor.tenant_id, key_id)
    _ensure_live(key)
    max_grace = runtime.settings.api_key_max_rotation_grace_seconds
    if body.grace_period_seconds > max_grace:
        raise InvalidInput(
            f"grace_period_seconds is at most {max_grace}",
            errors=[{"loc": ["body", "grace_period_seconds"], "msg": f"at most {max_grace}"}],
        )
    secret = runtime.key_secrets.generate()
    now = utcnow()
    # Only the secret just replaced stays valid during the grace period; a rotation during a
    # grace period ends the older secret's grace at once.
    key.previous_key_hash = key.key_hash if body.grace_period_seconds > 0 else None
    key.previous_valid_until = (
        now + timedelta(seconds=body.grace_period_seconds) if body.grace_period_seconds else None
    )
    key.key_hash = secret.key_hash
    key.display_prefix = secret.display_prefix
    await session.flush()
    audit.record(
        session,
        actor,
        "api_key.rotated",
        "api_key",
        key.id,
        changes={"grace_period_seconds": {"from": None, "to": body.grace_period_seconds}},
    )
    _emit(session, actor, events.API_KEY_ROTATED, key)
    invalidate_after_commit(runtime.credentials, session, {f"key:{key.id}"})
    return IssuedKey(record=key, secret=secret.key)


def _ensure_live(key: ApiKey) -> None:
    if key.revoked_at is not None:
        raise Conflict("This API key is revoked")
