"""Personal data in free text at ingest: the tenant decides whether notes and feedback are
stored as given, masked, or pseudonymised. One function, called by every feature that
stores free text."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from custos.privacy import operators
from custos.privacy.keys import TenantKeys
from custos.privacy.pii import Detector
from custos.privacy.settings import FreeTextPolicy, parse, phone_region


def text_to_store(
    tenant_settings: Mapping[str, Any] | None,
    text: str,
    keys: TenantKeys,
    known_names: Iterable[str] = (),
) -> str:
    settings = parse(tenant_settings)
    if settings.free_text is FreeTextPolicy.as_is:
        return text
    detector = Detector(min_score=settings.min_score, phone_region=phone_region(tenant_settings))
    entities = detector.scan(text, known_names)
    if not entities:
        return text
    name = settings.free_text.value
    return operators.transform(text, entities, keys, name, operators.options_for(name, None))
