"""The read cache as a personal-data holder: it keeps copies of customer records and of
list pages showing them."""

from __future__ import annotations

import structlog

from custos.db import on_after_commit
from custos.privacy.holders import Context, Erased, Holder, register

log = structlog.get_logger(__name__)


class ReadCacheCopies(Holder):
    name = "read_cache"
    order = 95  # after the records themselves

    async def export(self, ctx: Context) -> None:  # noqa: ARG002
        return None  # copies of the record

    async def erase(self, ctx: Context) -> list[Erased]:
        cache = ctx.runtime.read_cache
        tenant_id, ids = ctx.subject.tenant_id, ctx.subject.customer_ids

        async def forget() -> None:
            # After the commit: before it, a reader could put the old record back.
            try:
                await cache.erase(tenant_id, ids)
            except Exception as exc:
                # The erasure has committed; what the store holds expires with its TTL, and
                # the invalidation is remembered and retried when the store answers again.
                log.warning("cache_erase_failed", tenant_id=tenant_id, error=str(exc))
                await cache.invalidate({tenant_id: set(ids)})

        on_after_commit(ctx.session, forget)
        return [
            Erased(
                self.name,
                "deleted",
                len(ids),
                ["record", "list pages"],
                "entries of the records and the tenant's list pages, after the commit",
            )
        ]


register(ReadCacheCopies())
