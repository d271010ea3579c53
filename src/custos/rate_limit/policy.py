"""Which limits apply to a request: the global ceiling, the caller's address, the user or
API key, and the tenant's plan with the platform's overrides. Limits come from settings in
the `limits` notation and are parsed once."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from limits import RateLimitItem, parse_many
from limits.limits import RateLimitItemPerDay, RateLimitItemPerHour, RateLimitItemPerMinute

from custos.auth.principal import Principal, PrincipalKind
from custos.config import Settings
from custos.models import TenantPlan

# The windows a key's own limits and a tenant's overrides are given in.
WINDOWS: dict[str, type[RateLimitItem]] = {
    "per_minute": RateLimitItemPerMinute,
    "per_hour": RateLimitItemPerHour,
    "per_day": RateLimitItemPerDay,
}
_WINDOW_SECONDS = {name: cls(1).get_expiry() for name, cls in WINDOWS.items()}


def parse(value: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(value)) if value.strip() else ()


def describe(item: RateLimitItem) -> str:
    """`100 per minute`, `5000 per 2 hours`."""
    unit = item.GRANULARITY.name
    if item.multiples == 1:
        return f"{item.amount} per {unit}"
    return f"{item.amount} per {item.multiples} {unit}s"


@lru_cache(maxsize=4096)
def _windowed(values: tuple[tuple[str, int], ...]) -> tuple[RateLimitItem, ...]:
    return tuple(WINDOWS[name](amount) for name, amount in values if name in WINDOWS)


def windowed(values: Mapping[str, int | None] | None) -> tuple[RateLimitItem, ...]:
    """Items from {"per_minute": 100, "per_hour": None, ...}: the set values."""
    if not values:
        return ()
    return _windowed(tuple(sorted((k, v) for k, v in values.items() if v is not None)))


class LimitPolicy:
    def __init__(self, settings: Settings) -> None:
        self.global_items = parse(settings.rate_limit_global)
        self.ip_items = parse(settings.rate_limit_per_ip)
        self.user_items = parse(settings.rate_limit_per_user)
        self.plans: dict[str, tuple[RateLimitItem, ...]] = {
            TenantPlan.starter: parse(settings.rate_limit_plan_starter),
            TenantPlan.pro: parse(settings.rate_limit_plan_pro),
            TenantPlan.enterprise: parse(settings.rate_limit_plan_enterprise),
        }
        self._tenant: dict[tuple[str, tuple[tuple[str, int], ...]], tuple[RateLimitItem, ...]] = {}

    def plan_items(self, plan: str | None) -> tuple[RateLimitItem, ...]:
        return self.plans.get(plan or TenantPlan.starter, self.plans[TenantPlan.starter])

    def tenant_items(
        self, plan: str | None, overrides: Mapping[str, int | None] | None
    ) -> tuple[RateLimitItem, ...]:
        """The plan's limits, each window the platform overrode replaced by its override."""
        key = (plan or "", tuple(sorted((k, v) for k, v in (overrides or {}).items() if v)))
        found = self._tenant.get(key)
        if found is None:
            replaced = {_WINDOW_SECONDS[name] for name, _ in key[1] if name in _WINDOW_SECONDS}
            kept = tuple(i for i in self.plan_items(plan) if i.get_expiry() not in replaced)
            found = kept + _windowed(key[1])
            if len(self._tenant) < 10_000:
                self._tenant[key] = found
        return found

    def caller_items(self, principal: Principal) -> tuple[str, tuple[RateLimitItem, ...]]:
        """The limits of whoever is calling: a user's, or the API key's own."""
        if principal.kind == PrincipalKind.api_key:
            return "api_key", windowed(principal.rate_limits)
        return "user", self.user_items
