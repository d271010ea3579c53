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
from custos.rate_limit.limiter import Decision, LeasedLimiter
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


@dataclass(slots=True)
class RequestTraffic:
    principal: Principal | None = None
    tightest: Decision | None = None
    address_checked: bool = False

    def note(self, decision: Decision) -> None:
        current = self.tightest
        if current is None or (decision.remaining, decision.limit) < (
            current.remaining,
            current.limit,
        ):
            self.tightest = decision


current_traffic: ContextVar[RequestTraffic | None] = ContextVar("custos_traffic", default=None)


def note_limit(decision: Decision) -> None:
    """Tell the response about a limit counted elsewhere (the sign-in throttle)."""
    traffic = current_traffic.get()
    if traffic is not None:
        traffic.note(decision)


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

    # -- the three checkpoints --------------------------------------------------------------

    async def admit(self, scope: Scope) -> tuple[RequestTraffic, CustosError | None]:
        """The request's traffic state, and the refusal to answer with, if any."""
        traffic = RequestTraffic()
        current_traffic.set(traffic)
        if not self.enabled:
            return traffic, None
        if scope["path"] in EXEMPT_PATHS:
            for item in self.policy.global_items:
                traffic.note(self.limiter.peek("global", item, "all"))
            return traffic, None
        try:
            await self._spend(traffic, "global", self.policy.global_items, "all")
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
        await self._spend(traffic, "ip", self.policy.ip_items, keyed_hash(self._address_key, ip))

    async def principal(self, principal: Principal) -> None:
        traffic = current_traffic.get()
        if traffic is None:
            return  # not an HTTP request through the middleware
        traffic.principal = principal
        if not self.enabled:
            return
        scope, items = self.policy.caller_items(principal)
        await self._spend(traffic, scope, items, principal.id)
        tenant_items = self.policy.tenant_items(principal.tenant_plan, principal.tenant_rate_limits)
        await self._spend(traffic, "tenant", tenant_items, principal.tenant_id)

    # -- on the way out ---------------------------------------------------------------------

    def response_headers(self, traffic: RequestTraffic) -> list[tuple[bytes, bytes]]:
        decision = traffic.tightest
        if decision is None:
            return []
        now = time.time()
        reset = (
            decision.retry_after(now)
            if not decision.allowed
            else max(0, math.ceil(decision.reset_at - now))
        )
        return [
            (b"x-ratelimit-limit", str(decision.limit).encode()),
            (b"x-ratelimit-remaining", str(max(0, decision.remaining)).encode()),
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

    async def _spend(
        self,
        traffic: RequestTraffic,
        scope: str,
        items: Iterable[RateLimitItem],
        identifier: str,
    ) -> None:
        for item in items:
            decision = await self.limiter.take(scope, item, identifier)
            traffic.note(decision)
            if not decision.allowed:
                RATE_LIMIT_REFUSALS.labels(scope).inc()
                raise refusal(decision)


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
