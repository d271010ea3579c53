"""Personal data in free text at ingest: the tenant decides whether notes and feedback are
stored as given, masked, or pseudonymised. One function, called by every feature that
stores free text."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from custos.privacy import operators
from custos.privacy.keys import TenantKeys
from custos.privacy.pii import Detector
from custos.privacy.settings import FreeTextPolicy, parse, phone_region

TextWriter = Callable[[str, Iterable[str]], str]


def as_given(text: str, known_names: Iterable[str] = ()) -> str:  # noqa: ARG001
    """The writer of a tenant that stores free text as given (compare with `is`)."""
    return text


def text_writer(tenant_settings: Mapping[str, Any] | None, keys: TenantKeys) -> TextWriter:
    """The tenant's policy, read once, for a batch of texts: `writer(text, known_names)`."""
    settings = parse(tenant_settings)
    if settings.free_text is FreeTextPolicy.as_is:
        return as_given
    detector = Detector(min_score=settings.min_score, phone_region=phone_region(tenant_settings))
    name = settings.free_text.value
    options = operators.options_for(name, None)

    def write(text: str, known_names: Iterable[str] = ()) -> str:
        entities = detector.scan(text, known_names)
        if not entities:
            return text
        return operators.transform(text, entities, keys, name, options)

    return write


def text_to_store(
    tenant_settings: Mapping[str, Any] | None,
    text: str,
    keys: TenantKeys,
    known_names: Iterable[str] = (),
) -> str:
    return text_writer(tenant_settings, keys)(text, known_names)
