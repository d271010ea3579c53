"""`last_used_at` without a database write per request: remembered, then flushed in batches."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
import structlog

from custos.db import Database
from custos.kit.periodic import Periodic
from custos.kit.time import utcnow
from custos.models import ApiKey

log = structlog.get_logger(__name__)


class LastUsedTracker:
    def __init__(self, db: Database, interval_seconds: float) -> None:
        self._db = db
        self._interval = interval_seconds
        self._seen: dict[str, datetime] = {}
        self._loop = Periodic("api-key-last-used", interval_seconds, self.flush)

    def touch(self, key_id: str) -> None:
        self._seen[key_id] = utcnow()

    async def flush(self) -> None:
        if not self._seen:
            return
        seen, self._seen = self._seen, {}
        try:
            async with self._db.transaction(system=True) as session:
                for key_id, when in sorted(seen.items()):
                    await session.execute(
                        sa.update(ApiKey)
                        .where(
                            ApiKey.id == key_id,
                            sa.or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < when),
                        )
                        # Using a key is not a change to it: leave updated_at alone.
                        .values(last_used_at=when, updated_at=ApiKey.updated_at)
                        .execution_options(synchronize_session=False)
                    )
        except Exception as exc:
            log.warning("api_key_last_used_flush_failed", error=type(exc).__name__)
            for key_id, when in seen.items():
                self._seen.setdefault(key_id, when)

    async def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        await self.flush()
