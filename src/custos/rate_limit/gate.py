"""Traffic control at the edges of a request: rate limits, their headers, and metering.

Three places see a request, so no limit costs an extra step:

1. the request middleware (`admit`): the global ceiling, before anything else runs;
2. the route class, for routes without authentication (`public_route`): the caller's
   address; `authenticate` does the same when a credential is refused, so guessing keys
   counts against the address too;
3. `authenticate`, once the principal is known from the credential cache (`principal`):
   the user's or API key's own limits, then the tenant's (its plan and overrides travel
   with the cached principal).

Each limit spent notes where the caller stands; the middleware writes the tightest (the
fewest requests left) as `X-RateLimit-*` on whatever response goes out, errors and 429s
included, and finally hands the request to the usage meter when a tenant is known.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass

from fastapi import Request
from limits import RateLimitItem
from starlette.types import Scope

from custos.auth.principal import Principal
from custos.config import Settings
from custos.exceptions import CustosError, TooManyRequests
from custos.kit.context import request_context
from custos.kit.crypto import derive_key, keyed_hash
from custos.observability import RATE_LIMIT_REFUSALS
from custos.rate_limit.limiter import Counter, Decision, LeasedLimiter
from custos.rate_limit.policy import LimitPolicy, describe
from custos.usage.meter import UsageMeter

# Probes and scrapes are never refused: a load balancer must not take a busy instance for
# a dead one. Their responses still carry the global limit's headers.
EXEMPT_PATHS = frozenset({"/health", "/health/detailed", "/ready", "/metrics"})

_WHO = {
    "global": "the service as a whole",
    "ip": "requests from your address",
    "user": "this user",
    "api_key": "this API key",
    "tenant": "this tenant",
    "sign_in": "sign-in attempts from your address",
    "account": "failed sign-ins to this account",
}


# How many principals, tenants and addresses keep their counters between requests.
MAX_CACHED = 50_000


@dataclass(slots=True)
class RequestTraffic:
    principal: Principal | None = None
    # The tightest limit so far: (limit, remaining, reset at, allowed).
    tightest: tuple[int, int, float, bool] | None = None
    address_checked: bool = False

    def note(self, limit: int, remaining: int, reset_at: float, allowed: bool) -> None:
        current = self.tightest
        if (
            current is None
            or remaining < current[1]
            or (remaining == current[1] and limit < current[0])
        ):
            self.tightest = (limit, remaining, reset_at, allowed)


current_traffic: ContextVar[RequestTraffic | None] = ContextVar("custos_traffic", default=None)


def note_limit(decision: Decision) -> None:
    """Tell the response about a limit counted elsewhere (the sign-in throttle)."""
    traffic = current_traffic.get()
    if traffic is not None:
        traffic.note(decision.limit, decision.remaining, decision.reset_at, decision.allowed)


class TrafficGate:
    def __init__(
        self, settings: Settings, limiter: LeasedLimiter, meter: UsageMeter | None
    ) -> None:
        self.enabled = settings.rate_limits_enabled
        self.policy = LimitPolicy(settings)
        self.limiter = limiter
        self.meter = meter
        # Addresses are personal data: counted under a keyed hash.
        self._address_key = derive_key(settings.secret_key.get_secret_value(), "rate-limit-ip")
        self._global = [limiter.counter("global", i, "all") for i in self.policy.global_items]
        # Counters kept between requests, so the hot path builds no keys and shares each
        # tenant's counter among its callers.
        self._callers: dict[str, tuple[Principal, list[Counter]]] = {}
        self._tenants: dict[tuple[str, tuple[RateLimitItem, ...]], list[Counter]] = {}
        self._addresses: OrderedDict[str, list[Counter]] = OrderedDict()

    # -- the three checkpoints --------------------------------------------------------------

    async def admit(self, scope: Scope) -> tuple[RequestTraffic, CustosError | None]:
        """The request's traffic state, and the refusal to answer with, if any."""
        traffic = RequestTraffic()
        current_traffic.set(traffic)
        if not self.enabled:
            return traffic, None
        if scope["path"] in EXEMPT_PATHS:
            shared = self.limiter.shared
            for counter in self._global:
                d = counter.decision(True, shared)
                traffic.note(d.limit, d.remaining, d.reset_at, True)
            return traffic, None
        try:
            await self._spend(traffic, self._global)
        except CustosError as refused:
            return traffic, refused
        return traffic, None

    async def public_route(self, request: Request) -> None:
        if request.url.path not in EXEMPT_PATHS:
            await self.address()

    async def address(self) -> None:
        traffic = current_traffic.get()
        if traffic is None or not self.enabled or traffic.address_checked:
            return
        traffic.address_checked = True
        ip = request_context.get().ip or "unknown"
        counters = self._addresses.get(ip)
        if counters is None:
            hashed = keyed_hash(self._address_key, ip)
            counters = [self.limiter.counter("ip", i, hashed) for i in self.policy.ip_items]
            self._addresses[ip] = counters
            if len(self._addresses) > MAX_CACHED:
                self._addresses.popitem(last=False)
        else:
            self._addresses.move_to_end(ip)
        await self._spend(traffic, counters)

    async def principal(self, principal: Principal) -> None:
        traffic = current_traffic.get()
        if traffic is None:
            return  # not an HTTP request through the middleware
        traffic.principal = principal
        if self.enabled:
            await self._spend(traffic, self._counters_of(principal))

    # -- on the way out ---------------------------------------------------------------------

    def response_headers(self, traffic: RequestTraffic) -> list[tuple[bytes, bytes]]:
        tightest = traffic.tightest
        if tightest is None:
            return []
        limit, remaining, reset_at, allowed = tightest
        reset = max(1 if not allowed else 0, math.ceil(reset_at - time.time()))
        return [
            (b"x-ratelimit-limit", str(limit).encode()),
            (b"x-ratelimit-remaining", str(remaining).encode()),
            (b"x-ratelimit-reset", str(reset).encode()),
        ]

    def finish(
        self,
        traffic: RequestTraffic,
        *,
        method: str,
        route: str,
        status: int,
        seconds: float,
        request_bytes: int,
        response_bytes: int,
    ) -> None:
        principal = traffic.principal
        if principal is None or self.meter is None:
            return
        self.meter.record(
            principal.tenant_id,
            principal.kind.value,
            principal.id,
            route,
            method,
            status,
            seconds,
            request_bytes,
            response_bytes,
        )

    # -- internals --------------------------------------------------------------------------

    def _counters_of(self, principal: Principal) -> list[Counter]:
        """The caller's own counters, then its tenant's, kept per principal."""
        cached = self._callers.get(principal.id)
        if cached is not None:
            known = cached[0]
            if known is principal or (
                known.rate_limits == principal.rate_limits
                and known.tenant_plan == principal.tenant_plan
                and known.tenant_rate_limits == principal.tenant_rate_limits
            ):
                return cached[1]
        scope, items = self.policy.caller_items(principal)
        own = [self.limiter.counter(scope, item, principal.id) for item in items]
        tenant_items = self.policy.tenant_items(principal.tenant_plan, principal.tenant_rate_limits)
        tenant_key = (principal.tenant_id, tenant_items)
        tenant = self._tenants.get(tenant_key)
        if tenant is None:
            if len(self._tenants) >= MAX_CACHED:
                self._tenants.clear()
            tenant = self._tenants[tenant_key] = [
                self.limiter.counter("tenant", item, principal.tenant_id) for item in tenant_items
            ]
        if len(self._callers) >= MAX_CACHED:
            self._callers.clear()
        counters = own + tenant
        self._callers[principal.id] = (principal, counters)
        return counters

    async def _spend(self, traffic: RequestTraffic, counters: Iterable[Counter]) -> None:
        for counter in counters:
            allowed, shared = await self.limiter.take(counter)
            window = counter.windows[0 if shared else 1]
            remaining = window.remaining if allowed else 0
            traffic.note(counter.amount, remaining, window.reset_at, allowed)
            if not allowed:
                RATE_LIMIT_REFUSALS.labels(counter.scope).inc()
                raise refusal(counter.decision(False, shared))


def refusal(decision: Decision) -> TooManyRequests:
    retry_after = decision.retry_after()
    limit = describe(decision.item)
    return TooManyRequests(
        f"Rate limit reached for {_WHO.get(decision.scope, decision.scope)}: {limit};"
        f" retry in {retry_after} s",
        retry_after=retry_after,
        extensions={
            "rate_limit": {
                "scope": decision.scope,
                "limit": decision.limit,
                "window_seconds": decision.item.get_expiry(),
                "description": limit,
            }
        },
    )
