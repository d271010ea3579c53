"""Housekeeping for sign-in state: ended sessions do not linger with their addresses."""

from __future__ import annotations

from datetime import timedelta

import procrastinate
import sqlalchemy as sa
import structlog

from custos.kit.time import utcnow
from custos.models import AuthSession
from custos.runtime import Runtime
from custos.worker.context import runtime_of

log = structlog.get_logger(__name__)

# Kept this long after they end, for investigating a compromised account.
ENDED_SESSION_RETENTION = timedelta(days=7)


async def purge_ended_sessions(runtime: Runtime) -> int:
    """Delete sessions (and, by cascade, their refresh tokens) that ended a while ago."""
    cutoff = utcnow() - ENDED_SESSION_RETENTION
    async with runtime.db.transaction(system=True) as session:
        result = await session.execute(
            sa.delete(AuthSession).where(
                sa.or_(AuthSession.expires_at < cutoff, AuthSession.revoked_at < cutoff)
            )
        )
    deleted = int(result.rowcount)  # type: ignore[attr-defined]
    log.info("ended_sessions_purged", count=deleted)
    return deleted


def register(jobs: procrastinate.App) -> None:
    # Registered per App rather than through a shared Blueprint: procrastinate binds a
    # blueprint's tasks to the last App they were added to.
    @jobs.periodic(cron="17 * * * *", periodic_id="hourly")
    @jobs.task(name="auth.purge_ended_sessions", pass_context=True, queue="maintenance")
    async def purge_ended_sessions_job(
        context: procrastinate.JobContext,
        timestamp: int,  # noqa: ARG001 (procrastinate passes the schedule time by this name)
    ) -> int:
        return await purge_ended_sessions(runtime_of(context))
