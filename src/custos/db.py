"""Engines, sessions and the tenant context.

One transaction per request or job: `Database.transaction()` begins it, sets the tenant for
row-level security, and on success runs the before-commit hooks (the audit chain), commits,
then runs the after-commit hooks (cache invalidation broadcasts). Services only flush.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Protocol

import psycopg
import sqlalchemy as sa
from psycopg.adapt import Transformer
from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from custos.config import Settings
from custos.exceptions import DatabaseUnavailable


class ChainSealer(Protocol):
    def request(self, tenant_ids: Iterable[str]) -> None: ...


class CacheInvalidator(Protocol):
    async def invalidate(self, changed: dict[str, set[str]]) -> None: ...


class JobSink(Protocol):
    """Takes jobs a committed transaction deferred into this process's own queue (the
    embedded default's in-process worker; see worker/defer.py)."""

    async def submit(self, jobs: list[Any]) -> None: ...


BeforeCommitHook = Callable[[AsyncSession], Awaitable[None]]
AfterCommitHook = Callable[[], Awaitable[None]]

_BEFORE = "custos.before_commit"
_AFTER = "custos.after_commit"
# Releases this process's SQLite writer lock (once) when the transaction has committed.
_RELEASE = "custos.release_writer"
# The tenant a session's transaction is scoped to (None for system transactions).
TENANT = "custos.tenant"
_DATABASE = "custos.database"


def on_before_commit(session: AsyncSession, key: str, hook: BeforeCommitHook) -> None:
    """Run `hook` once, just before this session's transaction commits."""
    session.info.setdefault(_BEFORE, {}).setdefault(key, hook)


def on_after_commit(session: AsyncSession, hook: AfterCommitHook) -> None:
    session.info.setdefault(_AFTER, []).append(hook)


def customers_changed(session: AsyncSession, tenant_id: str, ids: Iterable[str]) -> None:
    """Customers written where the read cache's ORM hooks cannot see (COPY, Core
    statements): their entries and the tenant's list pages are retired after the commit."""
    db = database_of(session)
    if db is None or db.read_cache is None:
        return
    cache, changed = db.read_cache, {tenant_id: set(ids)}

    async def invalidate() -> None:
        await cache.invalidate(changed)

    on_after_commit(session, invalidate)


def database_of(session: AsyncSession) -> Database | None:
    """The Database whose transaction this session is, if it came from one."""
    db = session.info.get(_DATABASE)
    return db if isinstance(db, Database) else None


def create_engine(settings: Settings, *, runtime_role: bool = True) -> AsyncEngine:
    url = settings.database_url
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _configure_sqlite(engine)
        return engine
    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        # No ping before each checkout (a round trip per request): a connection found dead
        # is invalidated with the whole pool and the request answered 503, retryable.
        pool_recycle=1800,
    )
    if runtime_role:
        _switch_role_on_connect(engine, settings.db_runtime_role)
    return engine


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We emit BEGIN ourselves so writes can take the lock up front (BEGIN IMMEDIATE):
        # a deferred transaction that reads then writes can fail with "database is locked".
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA foreign_keys=ON",
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA busy_timeout=30000",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def _switch_role_on_connect(engine: AsyncEngine, role: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Even when DATABASE_URL names a superuser, requests and jobs run as the runtime
        # role, which is subject to row-level security. The name is validated in Settings.
        cursor = dbapi_connection.cursor()
        cursor.execute(f'SET ROLE "{role}"')
        cursor.close()
        dbapi_connection.commit()


class Database:
    def __init__(self, settings: Settings, engine: AsyncEngine | None = None) -> None:
        self.settings = settings
        self.engine = engine or create_engine(settings)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # Set by the runtime: seals the audit chains a committed transaction appended to.
        self.audit_sealer: ChainSealer | None = None
        # Set by the read cache: what writes outside the ORM (one-round-trip paths, COPY)
        # tell after their commit, {tenant id: customer ids}; ORM flushes it sees itself.
        self.read_cache: CacheInvalidator | None = None
        # Set by an in-process worker on SQLite: runs the jobs a transaction deferred.
        self.job_sink: JobSink | None = None
        # SQLite has one writer at a time: this process's writers queue here, holding no
        # pooled connection and polling no lock, and only the one in front takes the
        # database's write lock (other processes, the CLI, still meet its busy timeout).
        self._sqlite_writer = asyncio.Lock()

    async def dispose(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def transaction(
        self, *, tenant_id: str | None = None, system: bool = False, write: bool = True
    ) -> AsyncIterator[AsyncSession]:
        """A transaction scoped to one tenant, or (by name) to all of them with system=True."""
        if tenant_id is None and not system:
            raise ValueError("a transaction needs a tenant, or system=True")
        serialised = write and not self.is_postgres
        if serialised:
            try:
                async with asyncio.timeout(SQLITE_WRITER_WAIT_SECONDS):
                    await self._sqlite_writer.acquire()
            except TimeoutError:
                raise DatabaseUnavailable() from None
        session = self.sessionmaker()
        session.info[_DATABASE] = self
        session.info[TENANT] = tenant_id
        if serialised:
            # Let go as soon as the database has committed: after-commit hooks may write.
            session.info[_RELEASE] = _once(self._sqlite_writer.release)
        try:
            if self.is_postgres:
                await session.execute(
                    sa.text(
                        "SELECT set_config('app.tenant_id', :tenant, true),"
                        " set_config('app.bypass_rls', :bypass, true)"
                    ),
                    {"tenant": tenant_id or "", "bypass": "on" if system else "off"},
                )
            elif write:
                await session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
            yield session
            await commit(session)
        except BaseException:
            await session.rollback()
            raise
        finally:
            await session.close()
            if serialised:
                session.info[_RELEASE]()

    async def warm_up(self, connections: int) -> None:
        """Open `connections` pooled connections now, at once: a fresh worker process then
        does not pay for connecting (and the role switch) in the middle of its first jobs."""
        async with AsyncExitStack() as stack:
            await asyncio.gather(
                *(stack.enter_async_context(self.engine.connect()) for _ in range(connections))
            )

    async def one_round_trip(
        self, tenant_id: str, statements: str, params: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        """PostgreSQL only: the tenant settings and `statements` (`;`-separated, `%s`
        placeholders) sent as one simple-protocol message, which the server runs as one
        implicit transaction: all of it commits or none does, and the transaction-local
        settings hold for every statement and end with it. Same pool and role as every
        other transaction, so row-level security applies as usual. Returns the last
        statement's rows.

        For the hottest paths only. Parameters are quoted by the driver (a client-side
        binding cursor); hooks do not run, so the caller does what its commit would trigger.
        """
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: psycopg.AsyncConnection[Any] = raw.driver_connection  # type: ignore[assignment]
            try:
                await driver.set_autocommit(True)
                try:
                    cursor = psycopg.AsyncClientCursor(driver)
                    await cursor.execute(_message(driver, statements, (tenant_id, *params)))
                    while cursor.nextset():
                        pass
                    return await cursor.fetchall() if cursor.description else []
                finally:
                    await driver.set_autocommit(False)
            except psycopg.OperationalError as error:
                # As SQLAlchemy does on a disconnect it sees itself: every connection of
                # this generation is suspect (a server restart ends them all), so the whole
                # pool is recycled on checkout, not only this one connection.
                self.engine.sync_engine.pool._invalidate(raw, error)
                raise DatabaseUnavailable() from None


# As long as SQLite's own busy timeout: a writer waits this long for the ones before it.
SQLITE_WRITER_WAIT_SECONDS = 30.0

_ONE_ROUND_TRIP_PREFIX = (
    "SELECT set_config('app.tenant_id', %s, true), set_config('app.bypass_rls', 'off', true); "
)


def _once(call: Callable[[], None]) -> Callable[[], None]:
    done = False

    def run() -> None:
        nonlocal done
        if not done:
            done = True
            call()

    return run


@functools.lru_cache(maxsize=256)
def _message_parts(statements: str) -> tuple[bytes, ...]:
    return tuple((_ONE_ROUND_TRIP_PREFIX + statements).encode().split(b"%s"))


def _message(driver: psycopg.AsyncConnection[Any], statements: str, params: Sequence[Any]) -> bytes:
    """The statements with their parameters quoted in, as psycopg's client-side binding does;
    but the statement text is split at its placeholders once, not on every call (psycopg
    caches only short statements with few parameters, and a create has some sixty). The
    text holds no `%` but its `%s` placeholders: Custos writes it."""
    parts = _message_parts(statements)
    if len(parts) != len(params) + 1:
        raise ValueError(f"{len(parts) - 1} placeholders for {len(params)} parameters")
    quote = Transformer.from_context(driver).as_literal
    message = bytearray(parts[0])
    for value, part in zip(params, parts[1:], strict=True):
        message += b"NULL" if value is None else quote(value)
        message += part
    return bytes(message)


async def commit(session: AsyncSession) -> None:
    # A hook may register another (the event log defers its dispatch job): run rounds until
    # none is left.
    while before := session.info.pop(_BEFORE, None):
        for hook in before.values():
            await hook(session)
    await session.commit()
    if release := session.info.get(_RELEASE):
        release()
    after: list[AfterCommitHook] = session.info.pop(_AFTER, [])
    for after_hook in after:
        await after_hook()
