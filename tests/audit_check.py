"""The audit invariant, checked on every request the `client` fixture makes: a successful
write (any 2xx to a non-GET) adds exactly one audit row; a read or a failure adds none."""

from __future__ import annotations

import httpx
import sqlalchemy as sa

from custos.models import AuditLog
from custos.runtime import Runtime

SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


class AuditInvariant:
    # Across the whole run, for the summary line (tests/conftest.py).
    writes_checked = 0
    reads_checked = 0

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def count(self) -> int:
        async with self.runtime.db.transaction(system=True, write=False) as session:
            return int((await session.execute(sa.select(sa.func.count(AuditLog.id)))).scalar_one())

    async def before(self, request: httpx.Request) -> None:
        request.extensions["audit_rows_before"] = await self.count()

    async def after(self, response: httpx.Response) -> None:
        request = response.request
        added = await self.count() - request.extensions["audit_rows_before"]
        if request.method not in SAFE and 200 <= response.status_code < 300:
            AuditInvariant.writes_checked += 1
            assert added == 1, (
                f"{request.method} {request.url.path} -> {response.status_code} "
                f"wrote {added} audit rows, expected exactly 1"
            )
        elif request.method in SAFE:
            AuditInvariant.reads_checked += 1
            assert added == 0, f"{request.method} {request.url.path} wrote {added} audit rows"
