"""Scanning and transforming text on behalf of a tenant: its thresholds, phone region and
customer names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from custos.audit import service as audit
from custos.auth.principal import Principal
from custos.exceptions import InvalidInput
from custos.privacy import operators
from custos.privacy import settings as privacy_settings
from custos.privacy.keys import keys_for
from custos.privacy.pii import Detector, Entity, PiiType, name_candidates
from custos.privacy.repository import known_names
from custos.privacy.schemas import (
    PiiEntity,
    RedactRequest,
    RedactResult,
    ReidentifyResult,
    ScanOptions,
)


def detector_for(tenant_settings: Mapping[str, Any] | None, options: ScanOptions) -> Detector:
    tenant = privacy_settings.parse(tenant_settings)
    return Detector(
        min_score=tenant.min_score if options.min_score is None else options.min_score,
        thresholds=dict(options.thresholds or {}),
        types=frozenset(options.types) if options.types else frozenset(PiiType),
        phone_region=privacy_settings.phone_region(tenant_settings),
    )


async def scan_texts(
    session: AsyncSession, actor: Principal, texts: list[str], options: ScanOptions
) -> list[list[Entity]]:
    settings = await privacy_settings.tenant_settings(session, actor)
    detector = detector_for(settings, options)
    names: list[str] = []
    if options.known_names and PiiType.person in detector.types:
        candidates: set[str] = set()
        for text in texts:
            candidates |= name_candidates(text)
        names = await known_names(session, actor.tenant_id, candidates)
    return [detector.scan(text, names) for text in texts]


def as_api(entities: list[Entity]) -> list[PiiEntity]:
    return [
        PiiEntity(type=e.type, start=e.start, end=e.end, score=e.score, reason=e.reason)
        for e in entities
    ]


def _options(name: str, raw: Mapping[str, Any], loc: list[str]) -> Any:
    if name not in operators.OPERATORS:
        raise InvalidInput(
            f"Unknown operator {name!r}; one of: {', '.join(operators.OPERATORS)}",
            errors=[{"loc": loc, "msg": "unknown operator"}],
        )
    try:
        return operators.options_for(name, raw)
    except ValidationError as exc:
        raise InvalidInput(
            f"Invalid options for the {name} operator",
            errors=[{"loc": [*loc, *e["loc"]], "msg": e["msg"]} for e in exc.errors()],
        ) from None


async def redact(session: AsyncSession, actor: Principal, body: RedactRequest) -> RedactResult:
    default = _options(body.operator, body.options, ["body", "options"])
    per_type = {
        kind: (choice.operator, _options(choice.operator, choice.options, ["body", "operators"]))
        for kind, choice in body.operators.items()
    }
    [entities] = await scan_texts(session, actor, [body.text], body)
    text = operators.transform(
        body.text, entities, keys_for(session, actor.tenant_id), body.operator, default, per_type
    )
    return RedactResult(text=text, operator=body.operator, entities=as_api(entities))


async def reidentify(session: AsyncSession, actor: Principal, text: str) -> ReidentifyResult:
    result = operators.reidentify(text, keys_for(session, actor.tenant_id))
    # Who reversed how many, never what.
    audit.record(
        session,
        actor,
        "privacy.reidentified",
        "privacy",
        None,
        changes={"restored": {"from": None, "to": result.restored}},
    )
    return ReidentifyResult(
        text=result.text, restored=result.restored, unresolved=result.unresolved
    )
