"""Sealing: linking committed audit rows into their tenant's hash chain, after the fact.

A request writes its audit row unsealed (no sequence number, no hash) in its own transaction,
taking no lock. Sealing then appends the tenant's unsealed rows to the chain under the
chain-head lock, in batches. Writers never queue behind one another for the chain, and a
row exists exactly when its change was committed, as before; only its place in the chain
comes a few milliseconds later. Sealing runs after each commit in the process that wrote
(`AuditSealer`), every minute as a job (for rows a crashed process left), and before the
audit log is read or verified.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import cast

import sqlalchemy as sa
import structlog

from custos.audit.chain import GENESIS, HASHED, values_hash
from custos.audit.repository import AuditRepository
from custos.db import Database
from custos.models import AuditLog

log = structlog.get_logger(__name__)

BATCH = 500


_AUDIT_LOGS = cast(sa.Table, AuditLog.__table__)
# Every column the hash covers, but the two sealing sets.
_CONTENT = [_AUDIT_LOGS.c[name] for name in HASHED if name not in ("seq", "prev_hash")]
_SEAL = (
    sa.update(_AUDIT_LOGS)
    .where(_AUDIT_LOGS.c.id == sa.bindparam("row_id"))
    .values(
        seq=sa.bindparam("row_seq"),
        prev_hash=sa.bindparam("row_prev_hash"),
        hash=sa.bindparam("row_hash"),
    )
)


async def seal(
    db: Database, tenant_id: str, *, batch: int = BATCH, check_first: bool = True
) -> int:
    """Chain every committed unsealed row of one tenant; returns how many were sealed.

    With check_first (the read paths), one read finds out whether there is anything to
    seal, so nothing is locked or written when there is not.
    """
    sealed = 0
    unsealed = sa.and_(_AUDIT_LOGS.c.tenant_id == tenant_id, _AUDIT_LOGS.c.seq.is_(None))
    if check_first:
        async with db.transaction(tenant_id=tenant_id, write=False) as session:
            found = await session.scalar(sa.select(_AUDIT_LOGS.c.id).where(unsealed).limit(1))
            if found is None:
                return 0
    while True:
        async with db.transaction(tenant_id=tenant_id) as session:
            head = await AuditRepository(session, tenant_id).lock_head()
            oldest_first = (
                sa.select(*_CONTENT)
                .where(unsealed)
                .order_by(_AUDIT_LOGS.c.occurred_at, _AUDIT_LOGS.c.id)
                .limit(batch)
            )
            rows = (await session.execute(oldest_first)).mappings().all()
            if not rows:
                return sealed
            updates = []
            for row in rows:
                values = {**row, "seq": head.seq + 1, "prev_hash": head.hash or GENESIS}
                head.seq, head.hash = values["seq"], values_hash(values)
                updates.append(
                    {
                        "row_id": row["id"],
                        "row_seq": head.seq,
                        "row_prev_hash": values["prev_hash"],
                        "row_hash": head.hash,
                    }
                )
            # Core, one statement executed for every row: no ORM objects for a batch.
            await session.execute(_SEAL, updates)
            await session.flush()
        sealed += len(rows)
        if len(rows) < batch:
            return sealed


async def unsealed_tenants(db: Database) -> list[str]:
    async with db.transaction(system=True, write=False) as session:
        found = await session.execute(
            sa.select(AuditLog.tenant_id).where(AuditLog.seq.is_(None)).distinct()
        )
        return sorted(found.scalars())


async def seal_all(db: Database) -> int:
    return sum([await seal(db, tenant_id) for tenant_id in await unsealed_tenants(db)])


class AuditSealer:
    """Seals, in the background, the chains this process has just written to."""

    # Commits arriving within this window are sealed together: one chain-lock round per
    # tenant for many rows. Readers of the log seal before reading, so nobody waits on it.
    GATHER_SECONDS = 0.1

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def request(self, tenant_ids: Iterable[str]) -> None:
        self._pending.update(tenant_ids)
        self._wake.set()

    async def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="audit-sealer")

    async def stop(self, timeout: float = 5.0) -> None:
        # Not cancelled mid-seal: on SQLite a transaction cancelled while it waits for the
        # write lock can end up holding it (see kit/periodic.py).
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            await self._task
            self._task = None
        # What is left is sealed now if it can be, or by the periodic job if not. The time
        # limit is for PostgreSQL (a server gone away); SQLite gives up by its busy timeout.
        with contextlib.suppress(Exception):
            if self.db.is_postgres:
                async with asyncio.timeout(timeout):
                    await self._seal_pending()
            else:
                await self._seal_pending()

    async def _run(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            if self._stopping:
                return
            await asyncio.sleep(self.GATHER_SECONDS)
            self._wake.clear()
            try:
                await self._seal_pending()
            except Exception:  # the next commit or the periodic job retries
                log.exception("audit_sealing_failed")
                await asyncio.sleep(1.0)

    async def _seal_pending(self) -> None:
        tenants, self._pending = sorted(self._pending), set()
        for done, tenant_id in enumerate(tenants):
            try:
                await seal(self.db, tenant_id, check_first=False)
            except Exception:
                self._pending.update(tenants[done:])
                raise
