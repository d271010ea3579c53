"""Rate limits counted by `limits` in Redis (shared by every process) or in memory, without a
store round trip on most requests.

Each process takes permission from the shared counter in small leases: `limits`' hit with
a cost of n reserves n requests at once, which the process then spends locally. A lease is
sized to what this process used in the last lease period, never more than 1/32 of what the
window has left nor LEASE_MAX, and lapses after LEASE_SECONDS (a tenth of a short window):
a busy limit costs a round trip or two a second, a quiet one one per request, and close to
its end every lease is a single request, so the total allowed stays within a request or
two of the limit however many processes share it. Reservations that lapse unused were
counted without being served, so the error is on the safe side. Far from the end of the
window a lease is one round trip (the reservation); nearer, the window is looked at first.
Concurrent requests share the lease being taken. A refusal is remembered for up to a
second, so a client hammering a spent limit costs nothing.

When Redis fails, RedisHealth marks it down and, failing open, this process counts in
memory instead (each process then enforces the limits on its own share of the traffic,
never stricter than the shared count); failing closed, requests are refused with 503 until
Redis answers again.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from custos.exceptions import ServiceUnavailable
from custos.redis import RedisHealth

LEASE_SECONDS = 1.0
LEASE_MAX = 2048
LEASE_SHARE = 32
REFUSAL_RECHECK_SECONDS = 1.0
# A lease is taken without looking at the window first while the last look is this recent
# and the window had at least this many leases' worth left.
LOOK_AGAIN_SECONDS = 2.0
FAR_FROM_THE_END = 64
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
        "leasing",
        "looked_at",
        "period_start",
        "refused_until",
        "remaining",
        "reset_at",
        "shared_left",
        "tokens",
    )

    def __init__(self, amount: int) -> None:
        self.tokens = 0
        self.lease_until = 0.0
        self.refused_until = 0.0
        # What the caller has left: the store's count at our last lease, less what this
        # process spent since.
        self.remaining = amount
        self.reset_at = 0.0
        # The store's count after our last lease, and when the store was last looked at.
        self.shared_left = 0
        self.looked_at = -1e9
        self.demand = 0
        self.last_demand = 0
        self.period_start = 0.0
        # The lease being taken, which concurrent requests wait for instead of taking their
        # own (a burst on an empty lease would otherwise send one per request).
        self.leasing: asyncio.Future[bool | None] | None = None


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
        while True:
            if window.refused_until > now:
                return False, shared
            if window.tokens > 0 and now < window.lease_until:
                window.tokens -= 1
                if window.remaining > 0:
                    window.remaining -= 1
                return True, shared
            if window.leasing is None:
                break
            # Another request is taking a lease: share it rather than take one more.
            outcome = await asyncio.shield(window.leasing)
            if outcome is False:
                return False, shared
            if outcome is None:  # that lease failed: start over (the store may be down now)
                return await self.take(counter)
            now = time.monotonic()
        limiter = self._shared if shared and self._shared is not None else self._local
        leasing: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        window.leasing = leasing
        allowed: bool | None = None
        try:
            allowed = await self._lease(limiter, counter, window, now)
        except Exception as exc:
            if not shared or self._health is None:
                raise
            self._health.failed("rate_limit", exc)
            if not self._fail_open:
                raise StoreUnavailable() from None
        finally:
            # Waiters take from the lease's tokens, see the refusal, or (None: it failed or
            # was cancelled) start over; never left waiting.
            window.leasing = None
            leasing.set_result(allowed)
        if allowed is None:  # the store failed, and failing open: count in memory
            return await self.take(counter)
        return allowed, shared

    async def _lease(
        self,
        limiter: SlidingWindowCounterRateLimiter,
        counter: Counter,
        window: _Window,
        now: float,
    ) -> bool:
        item, ids = counter.item, counter.ids
        # Enough for what this process used in the last period (or so far in this one).
        demand = max(window.last_demand, window.demand)
        if (
            now - window.looked_at < LOOK_AGAIN_SECONDS
            and window.shared_left >= FAR_FROM_THE_END * min(demand, LEASE_MAX)
        ):
            # Far from the end of the window: reserve without looking first (one round
            # trip). The store refuses a reservation it cannot honour, whatever we think.
            size = max(1, min(demand, window.shared_left // LEASE_SHARE, LEASE_MAX))
            if await limiter.hit(item, *ids, cost=size):
                window.shared_left -= size
                self._leased(window, counter, size, now)
                return True
        expiry = item.get_expiry()
        for _ in range(LEASE_ATTEMPTS):
            stats = await limiter.get_window_stats(item, *ids)
            left = int(stats.remaining)
            wall = time.time()
            window.looked_at = now
            # An empty window reports "now"; counting starts with this request, so its
            # window ends a full period from now.
            window.reset_at = stats.reset_time if stats.reset_time > wall else wall + expiry
            if left <= 0:
                break
            size = max(1, min(demand, left // LEASE_SHARE, LEASE_MAX))
            if await limiter.hit(item, *ids, cost=size):
                window.shared_left = left - size
                self._leased(window, counter, size, now)
                return True
        window.tokens = 0
        window.remaining = 0
        window.shared_left = 0
        wait = max(0.0, window.reset_at - time.time())
        window.refused_until = now + min(REFUSAL_RECHECK_SECONDS, wait)
        return False

    @staticmethod
    def _leased(window: _Window, counter: Counter, size: int, now: float) -> None:
        lapsed = now >= window.lease_until
        # This request takes one; the rest are spent locally until the lease lapses.
        window.tokens = size - 1 if lapsed else window.tokens + size - 1
        window.lease_until = now + counter.period
        window.remaining = window.shared_left + window.tokens

    async def _forget_local(self) -> None:
        """Back on the shared store: what was counted in memory meanwhile is moot. (The
        memory windows of live counters are left to lapse; their leases last a second.)"""
        await self._local.storage.reset()
