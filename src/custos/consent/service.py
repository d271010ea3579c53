"""Consent per purpose: every grant and revocation is a row; the newest row of a purpose is
its current state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from custos import events
from custos.audit import service as audit
from custos.auth.principal import Principal
from custos.consent.schemas import DEFAULT_PURPOSES, ConsentEvent, ConsentState, LegalBasis
from custos.event import service as event_log
from custos.exceptions import InvalidInput
from custos.kit.ids import new_id
from custos.kit.time import utcnow
from custos.models import Consent
from custos.privacy import settings as privacy_settings
from custos.privacy.requests import subject_record


def purposes(tenant_settings: Mapping[str, Any] | None) -> list[str]:
    extra = privacy_settings.parse(tenant_settings).consent_purposes
    return list(dict.fromkeys([*DEFAULT_PURPOSES, *extra]))


async def _check_purpose(session: AsyncSession, actor: Principal, purpose: str) -> None:
    known = purposes(await privacy_settings.tenant_settings(session, actor))
    if purpose not in known:
        raise InvalidInput(
            f"Unknown consent type {purpose!r}; this tenant has: {', '.join(known)}",
            errors=[{"loc": ["consent_type"], "msg": "unknown consent type"}],
        )


async def current(session: AsyncSession, tenant_id: str, customer_id: str) -> dict[str, Consent]:
    rows = await session.scalars(
        sa.select(Consent)
        .where(Consent.tenant_id == tenant_id, Consent.customer_id == customer_id)
        .order_by(Consent.id)
    )
    latest: dict[str, Consent] = {}
    for row in rows:
        latest[row.purpose] = row
    return latest


async def record(
    session: AsyncSession,
    actor: Principal,
    customer_id: str,
    purpose: str,
    *,
    granted: bool,
    legal_basis: LegalBasis = LegalBasis.consent,
    source: str | None = None,
    policy_version: str | None = None,
) -> Consent:
    await subject_record(session, actor.tenant_id, customer_id)
    await _check_purpose(session, actor, purpose)
    before = (await current(session, actor.tenant_id, customer_id)).get(purpose)
    if not granted and before is not None:
        # A revocation stands on the grant it ends, unless it says otherwise.
        legal_basis = LegalBasis(before.legal_basis)
        policy_version = policy_version or before.policy_version
    row = Consent(
        id=new_id("cns"),
        tenant_id=actor.tenant_id,
        customer_id=customer_id,
        purpose=purpose,
        granted=granted,
        source=source,
        legal_basis=legal_basis.value,
        policy_version=policy_version,
        actor_type=actor.kind.value,
        actor_id=actor.id,
        occurred_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    audit.record(
        session,
        actor,
        "consent.granted" if granted else "consent.revoked",
        "customer",
        customer_id,
        changes={
            f"consent.{purpose}": {
                "from": None if before is None else before.granted,
                "to": granted,
            }
        },
    )
    payload = ConsentEvent(
        consent_id=row.id,
        customer_id=customer_id,
        consent_type=purpose,
        granted=granted,
        legal_basis=legal_basis,
        policy_version=policy_version,
    )
    event_log.emit(
        session,
        actor,
        events.CONSENT_GRANTED if granted else events.CONSENT_REVOKED,
        payload.model_dump(mode="json"),
        subject_type="customer",
        subject_id=customer_id,
    )
    return row


async def status(session: AsyncSession, actor: Principal, customer_id: str) -> list[ConsentState]:
    await subject_record(session, actor.tenant_id, customer_id)
    latest = await current(session, actor.tenant_id, customer_id)
    known = purposes(await privacy_settings.tenant_settings(session, actor))
    states = []
    # Purposes the tenant has since dropped still show while a record of them exists.
    for purpose in known + sorted(set(latest) - set(known)):
        row = latest.get(purpose)
        if row is None:
            states.append(ConsentState(consent_type=purpose, granted=False))
            continue
        states.append(
            ConsentState(
                consent_type=purpose,
                granted=row.granted,
                legal_basis=LegalBasis(row.legal_basis),
                policy_version=row.policy_version,
                source=row.source,
                updated_at=row.occurred_at,
            )
        )
    return states


def history_statement(
    tenant_id: str, customer_id: str, purpose: str | None
) -> sa.Select[tuple[Consent]]:
    stmt = sa.select(Consent).where(
        Consent.tenant_id == tenant_id, Consent.customer_id == customer_id
    )
    if purpose is not None:
        stmt = stmt.where(Consent.purpose == purpose)
    return stmt
