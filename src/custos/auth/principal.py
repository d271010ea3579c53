from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from custos.auth.scopes import PLATFORM_ADMIN


class PrincipalKind(StrEnum):
    user = "user"
    api_key = "api_key"
    system = "system"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, for which tenant, with which scopes. Built once per credential."""

    kind: PrincipalKind
    id: str
    tenant_id: str
    scopes: frozenset[str]
    role: str | None = None
    session_id: str | None = None
    customer_id: str | None = None
    # When this principal stops being valid on its own (key or token expiry).
    valid_until: datetime | None = None
    # The tenant's settings when the credential was loaded; a change to the tenant evicts
    # the cached principal, so they are as fresh as its status. None: not loaded.
    tenant_settings: Mapping[str, Any] | None = None
    # For rate limiting, cached with the principal like the settings: the tenant's plan and
    # the platform's overrides of its limits, and an API key's own limits (by window).
    tenant_plan: str | None = None
    tenant_rate_limits: Mapping[str, int] | None = None
    rate_limits: Mapping[str, int] | None = None

    @property
    def is_platform_admin(self) -> bool:
        return PLATFORM_ADMIN in self.scopes

    def has(self, *scopes: str) -> bool:
        return all(s in self.scopes for s in scopes)

    def narrowed(self, scopes: frozenset[str]) -> Principal:
        return replace(self, scopes=self.scopes & scopes)
