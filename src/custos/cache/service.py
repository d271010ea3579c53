"""The read cache: customer records (GET /customers/{id}) and customer list pages, in Redis
(or this process's memory on the embedded default), keyed per tenant.

Invalidation is not left to each writer: the cache watches every ORM flush of the
Database's sessions, notes which customers changed, and after the commit (before the
response) deletes their guard keys and the tenant's list-page guard, in one round trip. An
UPDATE or DELETE statement on customers (not per object) invalidates every tenant. See
store.py for why a reader racing a writer cannot put back the old record.

When Redis fails, reads go to the database (counted as `bypass`), and invalidations that
could not be sent are remembered: before this process uses the cache again it retires the
affected tenants' entries wholesale.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import sqlalchemy as sa
import structlog
from redis.asyncio import Redis
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session

from custos.audit import service as audit
from custos.auth.principal import Principal
from custos.cache.schemas import CacheStats as CacheStatsOut
from custos.cache.store import MemoryStore, RedisStore, Store
from custos.config import Settings
from custos.db import TENANT, Database, on_after_commit
from custos.exceptions import InvalidInput, NotFound, ServiceUnavailable
from custos.kit.crypto import derive_key, keyed_hash
from custos.kit.ids import is_valid_id
from custos.kit.periodic import Periodic
from custos.models import Customer
from custos.observability import CACHE_REQUESTS
from custos.redis import RedisHealth

log = structlog.get_logger(__name__)

CUSTOMER = "customer"
CUSTOMER_LIST = "customer_list"
STATS_FLUSH_SECONDS = 5.0
_CHANGED = "custos.cache.changed"
# In a tenant's set of changed customers: any of them (the tenant's every entry retires).
EVERY_CUSTOMER = "*"
_KEY = re.compile(r"customers|customer:[A-Za-z0-9_]{1,60}")


@dataclass(frozen=True, slots=True)
class CacheKey:
    """A key as clients name it: `customer:<id>` (one record) or `customers` (list pages)."""

    kind: str
    customer_id: str | None = None

    @classmethod
    def parse(cls, key: str) -> CacheKey:
        if not _KEY.fullmatch(key):
            raise InvalidInput(
                "A cache key is `customer:<customer id>` or `customers` (the list pages)",
                errors=[{"loc": ["path", "key"], "msg": "not a cache key"}],
            )
        if key == "customers":
            return cls(CUSTOMER_LIST)
        return cls(CUSTOMER, key.partition(":")[2])


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    misses: int


class ReadCache:
    def __init__(self, settings: Settings, redis: Redis | None, health: RedisHealth | None) -> None:
        self.enabled = settings.cache_enabled
        self.customer_ttl = settings.cache_customer_ttl_seconds
        self.list_ttl = settings.cache_list_ttl_seconds
        self._ns = "custos:cache:" + settings.deployment_id
        self._list_key = derive_key(settings.secret_key.get_secret_value(), "cache-list")
        self.store: Store
        if redis is not None:
            guard_ttl = max(self.customer_ttl, self.list_ttl) + 60
            self.store = RedisStore(redis, guard_ttl)
        else:
            self.store = MemoryStore(settings.cache_memory_max_entries)
        self._redis = redis
        self._health = health if redis is not None else None
        # Invalidations Redis did not take: retired wholesale once it answers again.
        self._missed_tenants: set[str] = set()
        self._missed_all = False
        self._stats: dict[str, list[int]] = {}
        self._counters = {
            (kind, result): CACHE_REQUESTS.labels(kind, result)
            for kind in (CUSTOMER, CUSTOMER_LIST)
            for result in ("hit", "miss", "bypass")
        }
        self._loop = Periodic("cache-stats", STATS_FLUSH_SECONDS, self.flush_stats)
        if self._health is not None:
            self._health.on_recovery(self._retire_missed)

    # -- keys -------------------------------------------------------------------------------

    def _guards(self, tenant_id: str, last: str) -> tuple[str, str, str]:
        return (f"{self._ns}:epoch", f"{self._ns}:t:{tenant_id}:epoch", last)

    def _customer_keys(self, tenant_id: str, customer_id: str) -> tuple[str, str]:
        entry = f"{self._ns}:t:{tenant_id}:c:{customer_id}"
        return entry + ":gen", entry

    def _list_gen(self, tenant_id: str) -> str:
        return f"{self._ns}:t:{tenant_id}:lists"

    def _stats_key(self, tenant_id: str) -> str:
        return f"{self._ns}:t:{tenant_id}:stats"

    # -- reads ------------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return self.enabled and (self._health is None or self._health.up)

    async def customer(
        self,
        tenant_id: str,
        customer_id: str,
        load: Callable[[], Awaitable[tuple[bytes, str]]],
    ) -> tuple[bytes, str]:
        """The customer's JSON and ETag, from the cache or from `load` (then cached)."""
        if not self.enabled or not is_valid_id(customer_id, "cus"):
            return await load()

        async def load_packed() -> bytes:
            body, etag = await load()
            return etag.encode() + b"\n" + body

        gen, entry = self._customer_keys(tenant_id, customer_id)
        packed = await self._serve(
            CUSTOMER, tenant_id, self._guards(tenant_id, gen), entry, load_packed, self.customer_ttl
        )
        etag, _, body = packed.partition(b"\n")
        return body, etag.decode()

    async def customer_list(
        self, tenant_id: str, query: str, load: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        """A list page's JSON for this exact query, from the cache or from `load`."""
        if not self.enabled:
            return await load()
        # Hashed: a query may hold search terms (personal data), and key names are visible.
        digest = keyed_hash(self._list_key, query)[:32]
        entry = f"{self._ns}:t:{tenant_id}:l:{digest}"
        guards = self._guards(tenant_id, self._list_gen(tenant_id))
        return await self._serve(CUSTOMER_LIST, tenant_id, guards, entry, load, self.list_ttl)

    async def _serve(
        self,
        kind: str,
        tenant_id: str,
        guards: tuple[str, ...],
        entry: str,
        load: Callable[[], Awaitable[bytes]],
        ttl: int,
    ) -> bytes:
        if not self.usable:
            self._counters[(kind, "bypass")].inc()
            return await load()
        try:
            stamp, payload = await self.store.read(guards, entry)
        except Exception as exc:
            self._failed(exc)
            self._counters[(kind, "bypass")].inc()
            return await load()
        counts = self._stats.get(tenant_id)
        if counts is None:
            counts = self._stats[tenant_id] = [0, 0]
        if payload is not None:
            self._counters[(kind, "hit")].inc()
            counts[0] += 1
            return payload
        self._counters[(kind, "miss")].inc()
        counts[1] += 1
        value = await load()
        try:
            await self.store.write(guards, entry, stamp, value, ttl)
        except Exception as exc:
            self._failed(exc)
        return value

    # -- invalidation -----------------------------------------------------------------------

    def attach(self, db: Database) -> None:
        """Watch the Database's sessions for changes to customers."""

        class CachedSession(Session):
            pass

        event.listen(CachedSession, "after_flush", self._after_flush)
        event.listen(CachedSession, "do_orm_execute", self._on_statement)
        db.sessionmaker.configure(sync_session_class=CachedSession)
        db.read_cache = self

    def _after_flush(self, session: Session, _context: Any) -> None:
        for obj in chain(session.new, session.dirty, session.deleted):
            if isinstance(obj, Customer):
                self._changed(session).setdefault(obj.tenant_id, set()).add(obj.id)

    def _on_statement(self, state: ORMExecuteState) -> None:
        if (state.is_update or state.is_delete) and any(
            mapper.class_ is Customer for mapper in state.all_mappers
        ):
            # Which rows a statement touches is not known here: retire every entry of the
            # session's tenant (of every tenant, in a system transaction).
            tenant_id = state.session.info.get(TENANT)
            changed = self._changed(state.session)
            if tenant_id is None:
                changed["*"] = set()
            else:
                changed.setdefault(tenant_id, set()).add(EVERY_CUSTOMER)

    def _changed(self, session: Session) -> dict[str, set[str]]:
        changed: dict[str, set[str]] | None = session.info.get(_CHANGED)
        if changed is None:
            changed = session.info[_CHANGED] = {}
            info = session.info

            async def invalidate() -> None:
                await self.invalidate(info.pop(_CHANGED, {}))

            # The sync session shares its `info` with the AsyncSession that commits it.
            on_after_commit(session, invalidate)  # type: ignore[arg-type]
        return changed

    async def invalidate(self, changed: dict[str, set[str]]) -> None:
        """Retire the entries of changed customers and their tenants' list pages."""
        everything = "*" in changed
        tenants = [t for t in changed if t != "*"]
        keys = [f"{self._ns}:epoch"] if everything else []
        for tenant_id in tenants:
            keys.append(self._list_gen(tenant_id))
            for customer_id in changed[tenant_id]:
                if customer_id == EVERY_CUSTOMER:
                    keys.append(f"{self._ns}:t:{tenant_id}:epoch")
                else:
                    keys.extend(self._customer_keys(tenant_id, customer_id))
        if self._health is not None and not self._health.up:
            self._remember(tenants, everything)
            return
        try:
            await self.store.forget(keys)
        except Exception as exc:
            self._failed(exc)
            self._remember(tenants, everything)

    async def erase(self, tenant_id: str, customer_ids: Sequence[str]) -> None:
        """Delete what the cache holds of these customers: their entries, and every list
        page of the tenant (a page may show them; invalidation would only hide it until it
        expires). Raises when the store cannot be reached."""
        keys = [self._list_gen(tenant_id)]
        for customer_id in customer_ids:
            keys.extend(self._customer_keys(tenant_id, customer_id))
        await self.store.forget(keys)
        await self.store.forget_prefix(f"{self._ns}:t:{tenant_id}:l:")

    def _remember(self, tenants: list[str], everything: bool) -> None:
        self._missed_tenants.update(tenants)
        self._missed_all = self._missed_all or everything

    async def _retire_missed(self) -> None:
        keys = [f"{self._ns}:t:{t}:epoch" for t in self._missed_tenants]
        if self._missed_all:
            keys.append(f"{self._ns}:epoch")
        if keys:
            await self.store.forget(keys)  # raising keeps Redis marked down; retried
            log.info("cache_retired_after_outage", tenants=len(self._missed_tenants))
        self._missed_tenants.clear()
        self._missed_all = False

    async def clear(self, tenant_id: str, key: CacheKey | None) -> None:
        """DELETE /cache[/{key}]: retire the tenant's entries, or those of one key."""
        if key is None:
            keys = [f"{self._ns}:t:{tenant_id}:epoch"]
        elif key.kind == CUSTOMER_LIST:
            keys = [self._list_gen(tenant_id)]
        else:
            assert key.customer_id is not None
            keys = list(self._customer_keys(tenant_id, key.customer_id))
        if self._health is not None and not self._health.up:
            raise ServiceUnavailable("The cache store is unreachable; retry shortly")
        try:
            await self.store.forget(keys)
        except Exception as exc:
            self._failed(exc)
            raise ServiceUnavailable("The cache store is unreachable; retry shortly") from None

    def _failed(self, exc: BaseException) -> None:
        if self._health is not None:
            self._health.failed("cache", exc)

    # -- statistics -------------------------------------------------------------------------

    async def stats(self, tenant_id: str) -> CacheStats:
        """The tenant's hits and misses: every process's flushed counts, plus this one's."""
        local = self._stats.get(tenant_id, [0, 0])
        hits, misses = local
        if self._redis is not None:
            try:
                stored = await self._redis.hmget(self._stats_key(tenant_id), ["hits", "misses"])
            except Exception as exc:
                self._failed(exc)
                raise ServiceUnavailable("The cache store is unreachable; retry shortly") from None
            hits += int(stored[0] or 0)
            misses += int(stored[1] or 0)
        return CacheStats(hits=hits, misses=misses)

    async def flush_stats(self) -> None:
        if self._redis is None or not self._stats:
            return
        pending, self._stats = self._stats, {}
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for tenant_id, (hits, misses) in pending.items():
                    key = self._stats_key(tenant_id)
                    pipe.hincrby(key, "hits", hits)
                    pipe.hincrby(key, "misses", misses)
                await pipe.execute()
        except Exception as exc:
            self._failed(exc)
            for tenant_id, (hits, misses) in pending.items():
                counts = self._stats.setdefault(tenant_id, [0, 0])
                counts[0] += hits
                counts[1] += misses

    async def start(self) -> None:
        if self._redis is not None:
            self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await self.flush_stats()


# -- what the endpoints call ---------------------------------------------------------------


async def tenant_stats(cache: ReadCache, tenant_id: str) -> CacheStatsOut:
    stats = await cache.stats(tenant_id)
    reads = stats.hits + stats.misses
    return CacheStatsOut(
        backend=cache.store.backend,
        enabled=cache.enabled,
        hits=stats.hits,
        misses=stats.misses,
        hit_rate=round(stats.hits / reads, 6) if reads else 0.0,
        ttl_seconds={CUSTOMER: cache.customer_ttl, CUSTOMER_LIST: cache.list_ttl},
        keys=["customer:<customer id>", "customers"],
    )


async def clear(cache: ReadCache, session: AsyncSession, actor: Principal, key: str | None) -> None:
    """Clear before the commit: if the store cannot be reached, nothing is recorded (503)."""
    parsed = CacheKey.parse(key) if key is not None else None
    if parsed is not None and parsed.customer_id is not None:
        # Another tenant's customer, or none: 404, as everywhere.
        found = await session.scalar(
            sa.select(Customer.id).where(
                Customer.tenant_id == actor.tenant_id, Customer.id == parsed.customer_id
            )
        )
        if found is None:
            raise NotFound("No such customer")
    await cache.clear(actor.tenant_id, parsed)
    audit.record(session, actor, "cache.cleared", "cache", key or "*")
