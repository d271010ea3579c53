"""Housekeeping for customer search: the trigram statistics its look-ups are planned by."""

from __future__ import annotations

import procrastinate
import sqlalchemy as sa

from custos.runtime import Runtime
from custos.worker.context import runtime_of


async def refresh_search_statistics(runtime: Runtime) -> int:
    """Copy ANALYZE's counts of the search text's trigrams where the search function reads
    them (see migration e1dd525e7799); returns how many trigrams it now knows as common.
    PostgreSQL only: SQLite's FTS5 index needs no statistics."""
    if not runtime.db.is_postgres:
        return 0
    async with runtime.db.transaction(system=True) as session:
        refreshed = await session.scalar(sa.text("SELECT customer_search_refresh_statistics()"))
    return int(refreshed or 0)


def register(jobs: procrastinate.App) -> None:
    # Autovacuum re-analyses the search index as it changes; this picks its counts up.
    @jobs.periodic(cron="*/10 * * * *", periodic_id="every-ten-minutes")
    @jobs.task(name="customer.refresh_search_statistics", pass_context=True, queue="maintenance")
    async def refresh_search_statistics_job(
        context: procrastinate.JobContext,
        timestamp: int,  # noqa: ARG001 (procrastinate passes the schedule time by this name)
    ) -> int:
        return await refresh_search_statistics(runtime_of(context))
