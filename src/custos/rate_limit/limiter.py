"""Rate limits counted by `limits` in Redis (shared by every process) or in memory, without a
store round trip on most requests.

Each process takes permission from the shared counter in small leases: `limits`' hit with
a cost of n reserves n requests at once, which the process then spends locally. A lease is
sized to what this process used in the last lease period, never more than 1/32 of what the
window has left nor LEASE_MAX, and lapses after LEASE_SECONDS (a tenth of a short window):
a busy limit costs a few round trips a second, a quiet one one per request, and close to
its end every lease is a single request, so the total allowed stays within a request or
two of the limit however many processes share it. Reservations that lapse unused were
counted without being served, so the error is on the safe side. A refusal is remembered
for up to a second, so a client hammering a spent limit costs nothing.

When Redis fails, RedisHealth marks it down and, failing open, this process counts in
memory instead (each process then enforces the limits on its own share of the traffic,
never stricter than the shared count); failing closed, requests are refused with 503 until
Redis answers again.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from custos.exceptions import ServiceUnavailable
from custos.redis import RedisHealth

LEASE_SECONDS = 1.0
LEASE_MAX = 256
LEASE_SHARE = 32
REFUSAL_RECHECK_SECONDS = 1.0
# A lease that cannot be had in this many tries (other processes took what was left
# between our look and our hit) is treated as a refusal.
LEASE_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    scope: str
    item: RateLimitItem
    remaining: int
    # Unix time at which the window frees capacity again (`limits`' window reset).
    reset_at: float

    @property
    def limit(self) -> int:
        return int(self.item.amount)

    def retry_after(self, now: float | None = None) -> int:
        return max(1, math.ceil(self.reset_at - (now or time.time())))


class _Window:
    """This process's view of one counter in one store."""

    __slots__ = (
        "demand",
        "last_demand",
        "lease_until",
        "period_start",
        "refused_until",
        "remaining",
        "reset_at",
        "tokens",
    )

    def __init__(self, amount: int) -> None:
        self.tokens = 0
        self.lease_until = 0.0
        self.refused_until = 0.0
        self.remaining = amount
        self.reset_at = 0.0
        self.demand = 0
        self.last_demand = 0
        self.period_start = 0.0


class Counter:
    """One limit for one identifier (a tenant, a key, an address, everyone). Callers keep
    these (the gate caches them per principal), so the hot path builds no keys."""

    __slots__ = ("amount", "ids", "item", "period", "scope", "windows")

    def __init__(self, scope: str, item: RateLimitItem, ids: tuple[str, ...]) -> None:
        self.scope = scope
        self.item = item
        self.ids = ids
        self.amount = int(item.amount)
        self.period = min(LEASE_SECONDS, item.get_expiry() / 10)
        # [shared store, memory]: counted apart, so falling back does not mix the two.
        self.windows = (_Window(self.amount), _Window(self.amount))

    def decision(self, allowed: bool, shared: bool) -> Decision:
        window = self.windows[0 if shared else 1]
        remaining = window.remaining if allowed else 0
        return Decision(allowed, self.scope, self.item, remaining, window.reset_at)


class StoreUnavailable(ServiceUnavailable):
    def __init__(self) -> None:
        super().__init__(
            "Rate limiting is unavailable, so requests are refused for now; retry shortly",
            headers={"Retry-After": "1"},
        )


class LeasedLimiter:
    def __init__(
        self,
        shared: Storage | None,
        health: RedisHealth | None,
        *,
        namespace: str,
        fail_open: bool,
    ) -> None:
        self._shared = SlidingWindowCounterRateLimiter(shared) if shared is not None else None
        self._local = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._health = health
        self.namespace = namespace
        self._fail_open = fail_open
        if health is not None:
            health.on_recovery(self._forget_local)

    @property
    def shared(self) -> bool:
        """True while counting in the shared store."""
        return self._shared is not None and (self._health is None or self._health.up)

    def counter(self, scope: str, item: RateLimitItem, identifier: str) -> Counter:
        return Counter(scope, item, (self.namespace, scope, identifier))

    async def take(self, counter: Counter) -> tuple[bool, bool]:
        """Spend one request; returns (allowed, counted in the shared store). The counter's
        window in that store says where the caller stands (Counter.decision)."""
        shared = self._shared is not None and (self._health is None or self._health.up)
        if not shared and self._shared is not None and not self._fail_open:
            raise StoreUnavailable()
        window = counter.windows[0 if shared else 1]
        now = time.monotonic()
        if now - window.period_start >= counter.period:
            elapsed = now - window.period_start
            window.last_demand = window.demand if elapsed < 2 * counter.period else 0
            window.demand = 0
            window.period_start = now
        window.demand += 1
        if window.refused_until > now:
            return False, shared
        if window.tokens > 0 and now < window.lease_until:
            window.tokens -= 1
            if window.remaining > 0:
                window.remaining -= 1
            return True, shared
        limiter = self._shared if shared and self._shared is not None else self._local
        try:
            return await self._lease(limiter, counter, window, now), shared
        except Exception as exc:
            if not shared or self._health is None:
                raise
            self._health.failed("rate_limit", exc)
            if not self._fail_open:
                raise StoreUnavailable() from None
            return await self.take(counter)

    async def _lease(
        self,
        limiter: SlidingWindowCounterRateLimiter,
        counter: Counter,
        window: _Window,
        now: float,
    ) -> bool:
        item, ids = counter.item, counter.ids
        expiry = item.get_expiry()
        for _ in range(LEASE_ATTEMPTS):
            stats = await limiter.get_window_stats(item, *ids)
            left = int(stats.remaining)
            wall = time.time()
            # An empty window reports "now"; counting starts with this request, so its
            # window ends a full period from now.
            window.reset_at = stats.reset_time if stats.reset_time > wall else wall + expiry
            if left <= 0:
                break
            size = max(1, min(window.last_demand, left // LEASE_SHARE, LEASE_MAX))
            if await limiter.hit(item, *ids, cost=size):
                lapsed = time.monotonic() >= window.lease_until
                window.tokens = size - 1 if lapsed else window.tokens + size - 1
                window.lease_until = now + counter.period
                window.remaining = left - 1
                return True
        window.tokens = 0
        window.remaining = 0
        wait = max(0.0, window.reset_at - time.time())
        window.refused_until = now + min(REFUSAL_RECHECK_SECONDS, wait)
        return False

    async def _forget_local(self) -> None:
        """Back on the shared store: what was counted in memory meanwhile is moot. (The
        memory windows of live counters are left to lapse; their leases last a second.)"""
        await self._local.storage.reset()
