"""Benchmark: the customer endpoints, against plain apps reading the same table.

Custos runs on PostgreSQL + Redis as `custos serve --workers 2` would run it, with N seeded
customers (default 100,000, written with COPY). Measured with wrk on 127.0.0.1 (-t2 -c32, a
warm-up then a measured run, one target at a time):

- GET /api/v1/customers/{id} with an API key, random existing ids;
- POST /api/v1/customers, a unique email per request;
- GET /api/v1/customers?limit=50 with filters (status and tag) over the seeded rows; for
  information also a rare tag and, where the endpoint takes it, `?q=` search.

Two baselines serve the same rows, each uvicorn with 2 workers, without authentication:

- orm: FastAPI + SQLAlchemy ORM (AsyncSession, select by id) + a Pydantic response model;
- raw: FastAPI + a psycopg AsyncConnectionPool, the row dumped to JSON with orjson.

Both get Custos's default connection pool per worker (`db_pool_size` + `db_max_overflow`):
a smaller one churns connections under this load and slows a baseline for a reason that
is configuration, not code.

Both do the database work Custos does for tenant isolation: their connections take the
runtime role on connect (no superuser, no BYPASSRLS, so the FORCE'd row-level security
policy applies to them), and each request sets app.tenant_id with set_config(..., true)
inside its transaction and filters on tenant_id too. Their POSTs validate a Pydantic body
and INSERT; unlike Custos they check no uniqueness first, parse no phone number and write
no audit row.

The GET and POST comparisons run in rounds (`--rounds`, default 3), every server once a
round in a turning order; a ratio is taken within each round and the median over rounds
reported, so the drift of a shared machine's speed over minutes favours no server.

Besides wrk's figures, each target reports the server's CPU time per request (its processes
only, so steadier than requests/s on a shared machine) and how many PostgreSQL sessions
were opened during the run (connection pool churn).

Targets (the figures are reported, not asserted): GET >= 1.5x the ORM baseline's
requests/s and p95 < 50 ms; POST >= 1.0x the ORM baseline; list with `?q=` p95 < 100 ms
(the issue's figure); the tag-filtered lists are reported for information.

Usage: python bench/customers.py [--customers 100000 --seconds 10 ...]
DATABASE_URL must name PostgreSQL (default postgresql://postgres@127.0.0.1:5432/postgres)
and REDIS_URL defaults to redis://127.0.0.1:6379/0; a database is created for the run and
dropped after. The last line of output is one JSON object with every figure; the exit
status is 0 unless something broke.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import orjson
import psycopg
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI, HTTPException, Response
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, EmailStr, Field
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from _common import (
    HOST,
    BenchError,
    Server,
    WrkResult,
    bench_settings,
    die_with_parent,
    exit_cleanly_on_sigterm,
    free_port,
    http_request,
    new_tenant_and_key,
    process_tree_cpu_seconds,
    require_wrk,
    run_wrk,
    server_process,
    settings_env,
    wait_until_idle,
    wrk_script,
)
from custos.config import Settings
from custos.customer.service import search_text
from custos.kit.ids import new_id
from custos.kit.scratch import throwaway_database
from custos.migrate import upgrade
from custos.observability import configure_logging
from custos.runtime import Runtime

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# Custos's default pool, which the baselines get too.
POOL_SIZE = int(Settings.model_fields["db_pool_size"].default)
POOL_OVERFLOW = int(Settings.model_fields["db_max_overflow"].default)
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
WORKERS = 2

GET_RATIO_TARGET = 1.5
GET_P95_TARGET_MS = 50.0
POST_RATIO_TARGET = 1.0
LIST_P95_TARGET_MS = 100.0

CUSTOS_PATH = "/api/v1/customers"
BASELINE_PATH = "/customers"
SERVERS = ("custos", "orm", "raw")
SERVER_LABELS = {"custos": "Custos", "orm": "ORM baseline", "raw": "raw psycopg baseline"}

# Seeded data: each tag is on a row independently with this probability.
TAG_SHARES = {
    "newsletter": 0.40,
    "wholesale": 0.15,
    "vip": 0.10,
    "beta": 0.05,
    "churn-risk": 0.03,
    "partner": 0.005,
}
ACTIVE_SHARE = 0.8
LIST_LIMIT = 50


@dataclass(frozen=True)
class ListTarget:
    query: str  # after `?limit=50&`
    matches: Callable[[dict[str, Any]], bool]  # which seeded rows it finds
    needs: str | None = None  # a query parameter the endpoint must take, else skipped


# The target, `?q=` search for an email fragment a handful of rows contain; for information,
# a common and a rare tag filter.
SEARCH_TERM = "customer4242"
LISTS = {
    "custos_list": ListTarget(
        "status=active&tag=vip", lambda row: row["status"] == "active" and "vip" in row["tags"]
    ),
    "custos_list_rare": ListTarget(
        "status=active&tag=partner",
        lambda row: row["status"] == "active" and "partner" in row["tags"],
    ),
    "custos_search": ListTarget(
        f"q={SEARCH_TERM}", lambda row: SEARCH_TERM in (row["email"] or ""), needs="q"
    ),
}

# The baselines' per-request tenant context: what Database.transaction() runs in Custos.
SET_TENANT_SQL = "SELECT set_config('app.tenant_id', %s, true)"
COLUMNS = (
    "id",
    "external_id",
    "email",
    "full_name",
    "phone",
    "phone_e164",
    "company",
    "address",
    "customer_type",
    "status",
    "tags",
    "metadata",
    "order_count",
    "total_order_value",
    "currency",
    "complaint_count",
    "last_order_at",
    "created_at",
    "updated_at",
    "deleted_at",
    "version",
)
_COLUMN_LIST = ", ".join(COLUMNS)
RAW_SELECT_SQL = (
    f"SELECT {_COLUMN_LIST} FROM customers WHERE id = %s AND tenant_id = %s AND deleted_at IS NULL"
)
_INSERTED = (
    "id",
    "tenant_id",
    "email",
    "full_name",
    "phone",
    "company",
    "customer_type",
    "status",
    "tags",
    "metadata",
    "order_count",
    "total_order_value",
    "complaint_count",
    "version",
    "created_at",
    "updated_at",
)
RAW_INSERT_SQL = (
    f"INSERT INTO customers ({', '.join(_INSERTED)})"
    f" VALUES ({', '.join(f'%({name})s' for name in _INSERTED)})"
    f" RETURNING {_COLUMN_LIST}"
)
SEED_COLUMNS = (
    "id",
    "tenant_id",
    "external_id",
    "email",
    "full_name",
    "phone",
    "phone_e164",
    "company",
    "address",
    "customer_type",
    "status",
    "tags",
    "metadata",
    "order_count",
    "total_order_value",
    "currency",
    "complaint_count",
    "last_order_at",
    "deleted_at",
    "version",
    "created_at",
    "updated_at",
)

# The request body every POST target gets; the email is made unique per request.
POST_BODY_FORMAT = (
    '{"email":"%s-%d-%d@example.com","full_name":"Bench Customer %d",'
    '"phone":"+1 415 555 2671","company":"Acme Ltd","customer_type":"individual",'
    '"tags":["bench"],"metadata":{"source":"wrk","plan":"pro"}}'
)


# -- the baselines (imported by their uvicorn workers) ---------------------------------------


class _BaselineBase(DeclarativeBase):
    pass


class BaselineCustomer(_BaselineBase):
    """The customers table mapped the plain way, independent of Custos's models."""

    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(40))
    external_id: Mapped[str | None] = mapped_column(sa.String(128))
    email: Mapped[str | None] = mapped_column(sa.String(320))
    full_name: Mapped[str] = mapped_column(sa.String(200))
    phone: Mapped[str | None] = mapped_column(sa.String(40))
    phone_e164: Mapped[str | None] = mapped_column(sa.String(20))
    company: Mapped[str | None] = mapped_column(sa.String(200))
    address: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    customer_type: Mapped[str] = mapped_column(sa.String(20))
    status: Mapped[str] = mapped_column(sa.String(20))
    tags: Mapped[list[str]] = mapped_column(JSONB)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB)
    order_count: Mapped[int]
    total_order_value: Mapped[Decimal] = mapped_column(sa.Numeric(16, 2))
    currency: Mapped[str | None] = mapped_column(sa.String(3))
    complaint_count: Mapped[int]
    last_order_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    version: Mapped[int]


class BaselineCustomerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr | None = None
    full_name: str = Field(min_length=1, max_length=200)
    phone: str | None = Field(None, max_length=40)
    company: str | None = Field(None, max_length=200)
    customer_type: Literal["individual", "business"] = "individual"
    status: Literal["active", "inactive"] = "active"
    tags: list[str] = Field(default_factory=list, max_length=50)
    metadata: dict[str, Any] = Field(default_factory=dict)


class BaselineCustomerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    external_id: str | None
    email: str | None
    full_name: str
    phone: str | None
    phone_e164: str | None
    company: str | None
    address: dict[str, Any] | None
    customer_type: str
    status: str
    tags: list[str]
    metadata: dict[str, Any] = Field(validation_alias="metadata_")
    order_count: int
    total_order_value: Decimal
    currency: str | None
    complaint_count: int
    last_order_at: datetime | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    version: int


def _baseline_env() -> tuple[str, str, str]:
    """The plain libpq URL, the tenant every request is for, the role connections take."""
    return os.environ["BENCH_DSN"], os.environ["BENCH_TENANT_ID"], os.environ["BENCH_DB_ROLE"]


def _new_row_values(body: BaselineCustomerIn, tenant_id: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": new_id("cus"),
        "tenant_id": tenant_id,
        "email": body.email.lower() if body.email else None,
        "full_name": body.full_name,
        "phone": body.phone,
        "company": body.company,
        "customer_type": body.customer_type,
        "status": body.status,
        "tags": body.tags,
        "metadata": body.metadata,
        "order_count": 0,
        "total_order_value": Decimal("0"),
        "complaint_count": 0,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }


def orm_app() -> FastAPI:
    """uvicorn factory: the SQLAlchemy ORM + Pydantic baseline."""
    dsn, tenant_id, role = _baseline_env()
    # The pool Custos gets by default: a smaller one would open and close connections under
    # the load that Custos's keeps, and slow the baseline for a reason of configuration.
    engine = create_engine(
        make_url(dsn).set(drivername="postgresql+psycopg"),
        pool_size=POOL_SIZE,
        max_overflow=POOL_OVERFLOW,
    )
    _set_role_on_connect(engine, role)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    set_tenant = sa.text("SELECT set_config('app.tenant_id', :tenant, true)")

    @asynccontextmanager
    async def tenant_session() -> AsyncIterator[AsyncSession]:
        async with sessions() as session, session.begin():
            await session.execute(set_tenant, {"tenant": tenant_id})
            yield session

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)
    app.get("/health")(_health)

    @app.get(BASELINE_PATH + "/{customer_id}", response_model=BaselineCustomerOut)
    async def get_customer(customer_id: str) -> BaselineCustomerOut:
        stmt = sa.select(BaselineCustomer).where(
            BaselineCustomer.id == customer_id,
            BaselineCustomer.tenant_id == tenant_id,
            BaselineCustomer.deleted_at.is_(None),
        )
        async with tenant_session() as session:
            row = (await session.execute(stmt)).scalar_one_or_none()
        if row is None:
            raise HTTPException(404, "No such customer")
        return BaselineCustomerOut.model_validate(row)

    @app.post(BASELINE_PATH, response_model=BaselineCustomerOut, status_code=201)
    async def create_customer(body: BaselineCustomerIn) -> BaselineCustomerOut:
        values = _new_row_values(body, tenant_id)
        values["metadata_"] = values.pop("metadata")
        row = BaselineCustomer(
            **values,
            external_id=None,
            phone_e164=None,
            address=None,
            currency=None,
            last_order_at=None,
            deleted_at=None,
        )
        async with tenant_session() as session:
            session.add(row)
        return BaselineCustomerOut.model_validate(row)

    return app


def raw_app() -> FastAPI:
    """uvicorn factory: the psycopg-only baseline."""
    dsn, tenant_id, role = _baseline_env()

    async def take_role(conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        await conn.commit()

    # Sized like Custos's pool (per worker).
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        dsn,
        min_size=POOL_SIZE,
        max_size=POOL_SIZE + POOL_OVERFLOW,
        open=False,
        configure=take_role,
        kwargs={"row_factory": dict_row},
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=True)
        try:
            yield
        finally:
            await pool.close()

    def as_json(row: dict[str, Any], status: int = 200) -> Response:
        content = orjson.dumps(row, default=str)  # default: the Decimal, as Custos sends it
        return Response(content, status_code=status, media_type="application/json")

    app = FastAPI(lifespan=lifespan)
    app.get("/health")(_health)

    @app.get(BASELINE_PATH + "/{customer_id}")
    async def get_customer(customer_id: str) -> Response:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(SET_TENANT_SQL, (tenant_id,))
            cursor = await conn.execute(RAW_SELECT_SQL, (customer_id, tenant_id))
            row = await cursor.fetchone()
        if row is None:
            raise HTTPException(404, "No such customer")
        return as_json(row)

    @app.post(BASELINE_PATH, status_code=201)
    async def create_customer(body: BaselineCustomerIn) -> Response:
        values = _new_row_values(body, tenant_id)
        values["tags"] = Jsonb(values["tags"])
        values["metadata"] = Jsonb(values["metadata"])
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(SET_TENANT_SQL, (tenant_id,))
            cursor = await conn.execute(RAW_INSERT_SQL, values)
            row = await cursor.fetchone()
        if row is None:
            raise HTTPException(500, "INSERT returned nothing")
        return as_json(row, 201)

    return app


async def _health() -> dict[str, str]:
    return {"status": "ok"}


def _set_role_on_connect(engine: AsyncEngine, role: str) -> None:
    """As Custos's engine does: every connection runs as the runtime role."""

    @sa.event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f'SET ROLE "{role}"')  # a plain identifier, validated in Settings
        cursor.close()
        dbapi_connection.commit()


def serve(kind: str, port: int) -> None:
    """Runs in the server subprocess: a uvicorn supervisor with its worker processes."""
    die_with_parent()
    if kind == "custos":
        from custos.cli import serve as custos_serve

        custos_serve(host=HOST, port=port, workers=WORKERS)  # exactly `custos serve`
        return
    uvicorn.run(
        f"{Path(__file__).stem}:{kind}_app",  # bench/ is on sys.path, here and in workers
        factory=True,
        host=HOST,
        port=port,
        workers=WORKERS,
        log_level="warning",
        access_log=False,
        server_header=False,
    )


# -- setup -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    tenant_id: str
    api_key: str
    ids_file: Path
    sample_id: str
    count: int
    seconds: float
    list_matches: dict[str, int]


async def _tenant_and_key(settings: Settings) -> tuple[str, str]:
    """A tenant and a customers:read/write API key, made through the services."""
    runtime = Runtime.build(settings)
    await runtime.start()
    try:
        return await new_tenant_and_key(runtime, ["customers:read", "customers:write"])
    finally:
        await runtime.stop()


_FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Radia", "Linus", "Frances")
_LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Perlman", "Allen")
_COMPANIES = ("Acme Ltd", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries")
_CITIES = (("London", "GB"), ("Paris", "FR"), ("Berlin", "DE"), ("Austin", "US"))


def _seed_rows(tenant_id: str, count: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    """Every column of SEED_COLUMNS, as Python values."""
    now = datetime.now(UTC)
    for i in range(count):
        business = rng.random() < 0.3
        city, country = rng.choice(_CITIES)
        created = now - timedelta(seconds=rng.randrange(365 * 86_400))
        phone = f"+1415{200 + i // 10_000:03d}{i % 10_000:04d}"
        address = {"line1": f"{i} High Street", "city": city, "country": country}
        yield {
            "id": new_id("cus"),
            "tenant_id": tenant_id,
            "external_id": f"crm-{i:07d}" if i % 2 else None,
            "email": f"customer{i}@example.com",
            "full_name": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
            "phone": phone,
            "phone_e164": phone,
            "company": rng.choice(_COMPANIES) if business else None,
            "address": address if i % 2 == 0 else None,
            "customer_type": "business" if business else "individual",
            "status": "active" if rng.random() < ACTIVE_SHARE else "inactive",
            "tags": [tag for tag, share in TAG_SHARES.items() if rng.random() < share],
            "metadata": {"source": "import", "score": i % 100},
            "order_count": 0,
            "total_order_value": Decimal("0"),
            "currency": None,
            "complaint_count": 0,
            "last_order_at": None,
            "deleted_at": None,
            "version": 1,
            "created_at": created,
            "updated_at": created + timedelta(seconds=rng.randrange(86_400)),
        }


def _copy_value(value: Any) -> Any:
    return orjson.dumps(value).decode() if isinstance(value, dict | list) else value


def seed(settings: Settings, count: int, workdir: Path) -> Seeded:
    tenant_id, api_key = asyncio.run(_tenant_and_key(settings))
    started = time.monotonic()
    dsn = plain_dsn(settings)
    ids: list[str] = []
    matches = dict.fromkeys(LISTS, 0)
    with psycopg.connect(dsn) as conn:
        # FORCE ROW LEVEL SECURITY holds the table's owner to the policy too (a superuser is
        # exempt anyway): the policy lets a session with app.bypass_rls on write any tenant.
        conn.execute("SELECT set_config('app.bypass_rls', 'on', false)")
        columns = list(SEED_COLUMNS)
        # What `?q=` searches, filled as the service fills it, where the schema has it.
        search = _has_column(conn, "customers", "search_text")
        if search:
            columns.append("search_text")
        copy_sql = f"COPY customers ({', '.join(columns)}) FROM STDIN"
        with conn.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for row in _seed_rows(tenant_id, count, random.Random(20_261_122)):
                values = [_copy_value(row[name]) for name in SEED_COLUMNS]
                if search:
                    values.append(search_text(SimpleNamespace(**row)))  # type: ignore[arg-type]
                copy.write_row(values)
                ids.append(row["id"])
                for name, target in LISTS.items():
                    matches[name] += target.matches(row)
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        # Fresh statistics and visibility map, and no autovacuum of the seed mid-measurement,
        # for the table and its search index; then what the periodic job does every ten
        # minutes (customer.refresh_search_statistics): the search's trigram statistics.
        conn.execute("VACUUM (ANALYZE) customers")
        conn.execute("VACUUM (ANALYZE) customer_search")
        conn.execute("SELECT customer_search_refresh_statistics()")
    ids_file = workdir / "customer-ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    return Seeded(
        tenant_id=tenant_id,
        api_key=api_key,
        ids_file=ids_file,
        sample_id=ids[len(ids) // 2],
        count=count,
        seconds=time.monotonic() - started,
        list_matches=matches,
    )


def _has_column(conn: psycopg.Connection[Any], table: str, column: str) -> bool:
    found = conn.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_name = %s AND column_name = %s",
        (table, column),
    ).fetchone()
    return found is not None


def plain_dsn(settings: Settings) -> str:
    url = make_url(settings.database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


# -- load ------------------------------------------------------------------------------------

# wrk runs one Lua state per thread: number them, so each gets its own random sequence and
# its own run of unique emails.
_LUA_THREADS = """
local thread_count = 0
setup = function(thread)
  thread_count = thread_count + 1
  thread:set("thread_no", thread_count)
end
"""
_LUA_GET = """
local ids = {}
init = function(args)
  for line in io.lines(IDS_FILE) do
    ids[#ids + 1] = line
  end
  math.randomseed(os.time() + 7919 * thread_no)
end
request = function()
  return wrk.format(nil, PREFIX .. ids[math.random(#ids)])
end
"""
_LUA_POST = """
local sent = 0
request = function()
  sent = sent + 1
  return wrk.format("POST", nil, nil, string.format(BODY, RUN, thread_no, sent, sent))
end
"""


def _lua_string(value: str) -> str:
    return "[==[" + value + "]==]"


def get_lua(prefix: str, ids_file: Path) -> str:
    lua = _LUA_GET.replace("IDS_FILE", _lua_string(str(ids_file)))
    return _LUA_THREADS + lua.replace("PREFIX", _lua_string(prefix + "/"))


def post_lua(target: str) -> str:
    """A new run tag every call: the warm-up and the measured run never reuse an email."""
    run = f"{target}-{secrets.token_hex(4)}"
    lua = _LUA_POST.replace("BODY", _lua_string(POST_BODY_FORMAT))
    return _LUA_THREADS + lua.replace("RUN", _lua_string(run))


@dataclass(frozen=True)
class Run:
    wrk: WrkResult
    db_sessions: int  # PostgreSQL sessions opened during the measured run (pool churn)
    cpu_ms: float | None  # the server's CPU (supervisor and workers) per request

    @property
    def cpu_ms_text(self) -> str:
        return "n/a" if self.cpu_ms is None else f"{self.cpu_ms:.2f}"


def db_sessions(dsn: str) -> int:
    """Sessions ever opened on the database, from the statistics collector."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class Load:
    wrk: str
    dsn: str
    args: argparse.Namespace

    def run(
        self,
        name: str,
        server: Server,
        path: str,
        lua: Callable[[], str],
        headers: dict[str, str],
    ) -> Run:
        """A warm-up, then the measured run; each with its own script (POST emails differ)."""
        url = server.base_url + path
        self._wrk(name, url, lua(), headers, self.args.warmup_seconds)
        sessions_before = db_sessions(self.dsn)
        cpu_before = process_tree_cpu_seconds(server.process.pid)
        result = self._wrk(name, url, lua(), headers, self.args.seconds)
        cpu_after = process_tree_cpu_seconds(server.process.pid)
        time.sleep(0.5)  # a closed session reaches the statistics as its backend exits
        # Less the session that read the count before, counted once it ended.
        opened = max(0, db_sessions(self.dsn) - sessions_before - 1)
        cpu_ms = None
        if cpu_before is not None and cpu_after is not None:
            cpu_ms = (cpu_after - cpu_before) * 1000 / result.requests
        run = Run(result, opened, cpu_ms)
        print(
            f"  {name:<20}{result.rps:>7.0f} req/s  p50 {result.p50_us / 1000:6.2f} ms  "
            f"p95 {result.p95_us / 1000:6.2f} ms  p99 {result.p99_us / 1000:6.2f} ms  "
            f"server CPU {run.cpu_ms_text} ms/req  {opened} db sessions opened",
            flush=True,
        )
        return run

    def _wrk(
        self, name: str, url: str, lua: str, headers: dict[str, str], seconds: float
    ) -> WrkResult:
        with wrk_script(lua) as script:
            result = run_wrk(
                self.wrk,
                script,
                url,
                seconds=seconds,
                connections=self.args.connections,
                threads=self.args.threads,
                headers=headers,
            )
        if result.status_errors or result.socket_errors or not result.requests:
            raise BenchError(
                f"{name}: {result.status_errors} error responses and "
                f"{result.socket_errors} socket errors in {result.requests} requests"
            )
        return result


def _server_env(settings: Settings, seeded: Seeded, workdir: Path, kind: str) -> dict[str, str]:
    env = settings_env(settings)
    env.update(
        {
            "BENCH_DSN": plain_dsn(settings),
            "BENCH_TENANT_ID": seeded.tenant_id,
            "BENCH_DB_ROLE": settings.db_runtime_role,
            # The baselines have no cache: this compares the database paths (bench/traffic.py
            # measures the read cache).
            "CUSTOS_CACHE_ENABLED": "false",
            # The workers merge metrics through this directory, as `custos serve` sets up;
            # a fresh one per start, as prometheus_client's multiprocess mode needs.
            "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix=f"metrics-{kind}-", dir=workdir),
        }
    )
    return env


def _started(
    settings: Settings, seeded: Seeded, workdir: Path, kind: str
) -> AbstractContextManager[Server]:
    port = free_port()
    argv = [sys.executable, str(Path(__file__).resolve()), "--serve", kind, str(port)]
    env = _server_env(settings, seeded, workdir, kind)
    return server_process(argv, env, port, reap_group=True)


def _json(status: int, body: bytes, what: str, expected: int) -> Any:
    if status != expected:
        raise BenchError(f"{what} answered {status}, expected {expected}: {body[:300]!r}")
    return json.loads(body)


def check_server(kind: str, server: Server, seeded: Seeded) -> dict[str, Any]:
    """The figures mean something only if the routes answer as intended."""
    auth = {"Authorization": f"Bearer {seeded.api_key}"} if kind == "custos" else {}
    path = CUSTOS_PATH if kind == "custos" else BASELINE_PATH
    url = server.base_url + path
    got = _json(*http_request("GET", f"{url}/{seeded.sample_id}", headers=auth), f"{kind} GET", 200)
    if got.get("id") != seeded.sample_id:
        raise BenchError(f"{kind} GET returned another record: {got}")
    body = POST_BODY_FORMAT % (f"probe-{kind}-{secrets.token_hex(4)}", 0, 0, 0)
    email = json.loads(body)["email"]
    headers = {**auth, "Content-Type": "application/json"}
    made = _json(
        *http_request("POST", url, headers=headers, body=body.encode()), f"{kind} POST", 201
    )
    if made.get("email") != email:
        raise BenchError(f"{kind} POST stored something else: {made}")
    if kind == "custos":
        status, _ = http_request("GET", f"{url}/{seeded.sample_id}")
        if status != 401:
            raise BenchError(f"Custos GET without a key answered {status}, expected 401")
    return dict(got)


def check_list(server: Server, seeded: Seeded, query: str, expected: int) -> None:
    headers = {"Authorization": f"Bearer {seeded.api_key}"}
    page = _json(*http_request("GET", server.base_url + query, headers=headers), "list", 200)
    if len(page["items"]) != min(expected, LIST_LIMIT):
        raise BenchError(f"the list returned {len(page['items'])} items, expected {expected}")


def list_parameters(server: Server) -> set[str]:
    """The query parameters GET /api/v1/customers takes, read from the OpenAPI schema."""
    status, body = http_request("GET", server.base_url + "/openapi.json")
    if status != 200:
        raise BenchError(f"GET /openapi.json answered {status}")
    operation = json.loads(body).get("paths", {}).get(CUSTOS_PATH, {}).get("get", {})
    return {p.get("name") for p in operation.get("parameters", [])}


def list_query(target: ListTarget) -> str:
    return f"{CUSTOS_PATH}?limit={LIST_LIMIT}&{target.query}"


@dataclass
class Measured:
    rounds: dict[str, list[Run]]  # each target's runs, round by round
    bodies: dict[str, dict[str, Any]]
    skipped: dict[str, str]  # list targets the endpoint cannot serve, and why
    load_before: float
    load_after: float

    @property
    def results(self) -> dict[str, Run]:
        """Each target's median run (by requests/s) of its rounds."""
        return {
            name: sorted(runs, key=lambda run: run.wrk.rps)[(len(runs) - 1) // 2]
            for name, runs in self.rounds.items()
        }


def measure(
    settings: Settings, seeded: Seeded, workdir: Path, args: argparse.Namespace
) -> Measured:
    """All reads first, then all writes, one server up at a time: a server's idle pool and
    the rows one target inserts never weigh on another target's read figures.

    Each phase runs in rounds, every server once a round, in an order that turns round by
    round: a shared machine's speed drifts over minutes, and a ratio is taken within a
    round (then the median over rounds), so drift weighs on no server more than another.
    The list targets run in the first round only (they have no baseline to compare with)."""
    load = Load(require_wrk(), plain_dsn(settings), args)
    measured = Measured({}, {}, {}, os.getloadavg()[0], 0.0)
    for phase in ("GET", "POST"):
        for round_no in range(args.rounds):
            turn = round_no % len(SERVERS)
            for kind in SERVERS[turn:] + SERVERS[:turn]:
                if args.rounds > 1:
                    print(f"  round {round_no + 1}/{args.rounds}: {kind} {phase}", flush=True)
                with _started(settings, seeded, workdir, kind) as server:
                    # /health answered, but the other worker may still be starting up.
                    if not wait_until_idle(server.process.pid):
                        print(f"  note: the {kind} server never went idle after starting")
                    try:
                        _drive(load, measured, seeded, kind, phase, server, lists=round_no == 0)
                    except BenchError as exc:
                        log = server.log_tail()
                        raise BenchError(f"{exc}\n{kind} server log:\n{log}") from None
    _same_fields(measured.bodies)
    measured.load_after = os.getloadavg()[0]
    return measured


def _drive(
    load: Load,
    measured: Measured,
    seeded: Seeded,
    kind: str,
    phase: str,
    server: Server,
    *,
    lists: bool,
) -> None:
    headers = {"Authorization": f"Bearer {seeded.api_key}"} if kind == "custos" else {}
    path = CUSTOS_PATH if kind == "custos" else BASELINE_PATH

    def record(name: str, run: Run) -> None:
        measured.rounds.setdefault(name, []).append(run)

    if phase == "POST":
        record(
            f"{kind}_post",
            load.run(
                f"{kind} POST",
                server,
                path,
                partial(post_lua, kind),
                {**headers, "Content-Type": "application/json"},
            ),
        )
        return
    measured.bodies[kind] = check_server(kind, server, seeded)
    record(
        f"{kind}_get",
        load.run(
            f"{kind} GET",
            server,
            path + "/",  # the Lua script adds the id
            partial(get_lua, path, seeded.ids_file),
            headers,
        ),
    )
    if kind != "custos" or not lists:
        return
    parameters = list_parameters(server)
    for name, target in LISTS.items():
        if target.needs and target.needs not in parameters:
            measured.skipped[name] = f"GET {CUSTOS_PATH} has no {target.needs} parameter"
            continue
        query = list_query(target)
        check_list(server, seeded, query, seeded.list_matches[name])
        record(
            name,
            load.run(
                f"custos ?{target.query.rpartition('&')[2]}",
                server,
                query,
                lambda: "",  # no Lua hooks: the same URL every time
                headers,
            ),
        )


def _same_fields(bodies: dict[str, dict[str, Any]]) -> None:
    """Like for like: every server returned the same fields for the same record."""
    reference = set(bodies["custos"])
    for kind, body in bodies.items():
        if set(body) != reference:
            raise BenchError(
                f"{kind} returns other fields than Custos: {sorted(set(body) ^ reference)}"
            )


# -- report ----------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _ms(us: float) -> float:
    return round(us / 1000, 3)


def _figures(run: Run) -> dict[str, Any]:
    res = run.wrk
    return {
        "rps": round(res.rps, 1),
        "p50_ms": _ms(res.p50_us),
        "p95_ms": _ms(res.p95_us),
        "p99_ms": _ms(res.p99_us),
        "max_ms": _ms(res.max_us),
        "requests": res.requests,
        "server_cpu_ms_per_request": None if run.cpu_ms is None else round(run.cpu_ms, 3),
        "db_sessions_opened": run.db_sessions,
    }


def _search_note(measured: Measured) -> str:
    if "custos_search" in measured.rounds:
        return (
            f"the list target is ?q={SEARCH_TERM} text search, an email fragment few rows"
            " contain; the tag lists are for information"
        )
    return (
        "q text search: not measured, because it does not exist yet "
        f"({measured.skipped.get('custos_search', 'no q parameter')})"
    )


def report(
    settings: Settings, seeded: Seeded, measured: Measured, args: argparse.Namespace
) -> dict[str, Any]:
    results = measured.results
    r = {name: run.wrk for name, run in results.items()}

    def per_round(a: str, b: str) -> list[float]:
        return [
            x.wrk.rps / y.wrk.rps if y.wrk.rps else 0.0
            for x, y in zip(measured.rounds[a], measured.rounds[b], strict=True)
        ]

    def ratio(a: str, b: str) -> float:
        # Within each round, then the median: drift between rounds cancels out.
        return statistics.median(per_round(a, b))

    rows = [
        ("custos_get", f"GET  Custos {CUSTOS_PATH}/{{id}} (API key)"),
        ("orm_get", f"GET  ORM baseline {BASELINE_PATH}/{{id}}"),
        ("raw_get", f"GET  raw psycopg baseline {BASELINE_PATH}/{{id}}"),
        ("custos_post", f"POST Custos {CUSTOS_PATH} (API key)"),
        ("orm_post", f"POST ORM baseline {BASELINE_PATH}"),
        ("raw_post", f"POST raw psycopg baseline {BASELINE_PATH}"),
    ]
    for name, target in LISTS.items():
        if name in results:
            rows.append((name, f"LIST Custos ?limit={LIST_LIMIT}&{target.query}"))

    ratios = {
        "get_custos_over_orm": ratio("custos_get", "orm_get"),
        "get_custos_over_raw": ratio("custos_get", "raw_get"),
        "get_orm_over_raw": ratio("orm_get", "raw_get"),
        "post_custos_over_orm": ratio("custos_post", "orm_post"),
        "post_custos_over_raw": ratio("custos_post", "raw_post"),
        "post_orm_over_raw": ratio("orm_post", "raw_post"),
    }

    def cpu_ratio(a: str, b: str) -> float | None:
        # b's CPU per request over a's: the requests/s ratio a/b if CPU were all that counted.
        each = [
            y.cpu_ms / x.cpu_ms
            for x, y in zip(measured.rounds[a], measured.rounds[b], strict=True)
            if x.cpu_ms and y.cpu_ms
        ]
        return statistics.median(each) if each else None

    cpu_ratios = {
        "get_custos_over_orm": cpu_ratio("custos_get", "orm_get"),
        "get_custos_over_raw": cpu_ratio("custos_get", "raw_get"),
        "post_custos_over_orm": cpu_ratio("custos_post", "orm_post"),
        "post_custos_over_raw": cpu_ratio("custos_post", "raw_post"),
    }
    get_p95 = r["custos_get"].p95_us / 1000
    # Without `?q=` the list target cannot be met: an infinite p95 fails it.
    list_p95 = r["custos_search"].p95_us / 1000 if "custos_search" in r else float("inf")
    checks = {
        "get_ratio": (ratios["get_custos_over_orm"], GET_RATIO_TARGET, ">="),
        "get_p95_ms": (get_p95, GET_P95_TARGET_MS, "<"),
        "post_ratio": (ratios["post_custos_over_orm"], POST_RATIO_TARGET, ">="),
        "list_p95_ms": (list_p95, LIST_P95_TARGET_MS, "<"),
    }
    verdicts = {
        name: (value >= limit if op == ">=" else value < limit)
        for name, (value, limit, op) in checks.items()
    }

    print()
    print(
        f"Custos customers benchmark: PostgreSQL, redis {'on' if settings.redis_url else 'off'}, "
        f"python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print(
        f"  {seeded.count} customers in one tenant, seeded by COPY in {seeded.seconds:.1f} s; "
        f"each server uvicorn with {WORKERS} workers; wrk -t{args.threads} "
        f"-c{args.connections}, {args.warmup_seconds} s warm-up then {args.seconds} s"
    )
    print()
    print(
        f"  {'target':<54}{'req/s':>7}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}"
        f"{'requests':>9}{'CPU ms':>8}{'conns':>6}"
    )
    for name, label in rows:
        res, run = r[name], results[name]
        print(
            f"  {label:<54}{res.rps:>7.0f}{res.p50_us / 1000:>8.1f}{res.p95_us / 1000:>8.1f}"
            f"{res.p99_us / 1000:>8.1f}{res.requests:>9}{run.cpu_ms_text:>8}{run.db_sessions:>6}"
        )
    print(
        "  CPU ms: the server's processes' CPU time per request (the machine's other load\n"
        "  does not count, so this compares better than req/s on a busy machine); conns:\n"
        "  PostgreSQL sessions opened during the run, i.e. connection pool churn (approximate)"
    )
    print()
    for name, target in LISTS.items():
        share = seeded.list_matches[name] / seeded.count if seeded.count else 0.0
        how = f"not measured: {measured.skipped[name]}" if name in measured.skipped else ""
        print(
            f"  {target.query} matches {seeded.list_matches[name]} of {seeded.count} rows "
            f"({share:.1%}); {how or 'newest first, keyset on the id'}"
        )
    if args.rounds > 1:
        print(
            f"  {args.rounds} rounds; a target's row above is its median run; ratios are "
            "taken within each round, then the median.\n"
            "  Custos/ORM round by round: GET "
            + ", ".join(f"{x:.2f}" for x in per_round("custos_get", "orm_get"))
            + "; POST "
            + ", ".join(f"{x:.2f}" for x in per_round("custos_post", "orm_post"))
        )
    print(
        f"  GET  requests/s ratios: Custos/ORM {ratios['get_custos_over_orm']:.2f}, "
        f"Custos/raw {ratios['get_custos_over_raw']:.2f}, ORM/raw {ratios['get_orm_over_raw']:.2f}"
    )
    print(
        f"  POST requests/s ratios: Custos/ORM {ratios['post_custos_over_orm']:.2f}, "
        f"Custos/raw {ratios['post_custos_over_raw']:.2f}, "
        f"ORM/raw {ratios['post_orm_over_raw']:.2f}"
    )
    if all(value is not None for value in cpu_ratios.values()):
        print(
            "  by server CPU per request (baseline's / Custos's): "
            f"GET Custos/ORM {cpu_ratios['get_custos_over_orm']:.2f}, "
            f"Custos/raw {cpu_ratios['get_custos_over_raw']:.2f}; "
            f"POST Custos/ORM {cpu_ratios['post_custos_over_orm']:.2f}, "
            f"Custos/raw {cpu_ratios['post_custos_over_raw']:.2f}"
        )
    print(f"  {_search_note(measured)}")
    print(
        "  baselines: no authentication, no middleware; same runtime role, RLS, tenant\n"
        f"  set_config and tenant filter as Custos; pools sized as Custos's default\n"
        f"  ({POOL_SIZE} + {POOL_OVERFLOW} overflow per worker). Their POSTs skip Custos's email\n"
        "  uniqueness check, phone parsing, tenant settings read and audit row."
    )
    print(
        f"  machine load average before/after: {measured.load_before:.2f} / "
        f"{measured.load_after:.2f} (the figures are only as quiet as the machine)"
    )
    print()
    print("Targets")
    labels = {
        "get_ratio": f"GET requests/s >= {GET_RATIO_TARGET}x ORM baseline",
        "get_p95_ms": f"GET p95 < {GET_P95_TARGET_MS:.0f} ms at {args.connections} connections",
        "post_ratio": f"POST requests/s >= {POST_RATIO_TARGET}x ORM baseline",
        "list_p95_ms": f"list ?q= p95 < {LIST_P95_TARGET_MS:.0f} ms",
    }
    for name, (value, _limit, _op) in checks.items():
        print(f"  {labels[name]:<48}{value:>10.2f}   {_verdict(verdicts[name])}")
    print()

    return {
        "bench": "customers",
        "backend": "postgresql",
        "redis": bool(settings.redis_url),
        "workers": WORKERS,
        "cpus": os.cpu_count(),
        "customers": seeded.count,
        "seed_seconds": round(seeded.seconds, 2),
        "results": {name: _figures(run) for name, run in results.items()},
        "ratios": {name: round(value, 4) for name, value in ratios.items()},
        "rounds": args.rounds,
        "rps_by_round": {
            name: [round(run.wrk.rps, 1) for run in runs] for name, runs in measured.rounds.items()
        },
        "cpu_ratios": {
            name: None if value is None else round(value, 4) for name, value in cpu_ratios.items()
        },
        "list_matches": seeded.list_matches,
        "load_average": [round(measured.load_before, 2), round(measured.load_after, 2)],
        "q_search_measured": "custos_search" in results,
        "q_search_note": _search_note(measured),
        "wrk": {
            "threads": args.threads,
            "connections": args.connections,
            "seconds": args.seconds,
            "warmup_seconds": args.warmup_seconds,
        },
        "targets": {
            name: {"value": round(value, 4), "limit": limit, "pass": verdicts[name]}
            for name, (value, limit, _op) in checks.items()
        },
    }


# -- entry point -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--customers", type=int, default=100_000, help="customers to seed")
    parser.add_argument("--seconds", type=int, default=10, help="length of a measured wrk run")
    parser.add_argument("--warmup-seconds", type=int, default=2, help="wrk warm-up per target")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of the GET and POST comparisons"
    )
    args = parser.parse_args(argv)
    if args.serve is None and args.customers < 2 * LIST_LIMIT:
        parser.error(f"--customers must be at least {2 * LIST_LIMIT}")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def _database_from_environment() -> str | None:
    """PostgreSQL and Redis from the environment, the local servers by default; an error
    message when DATABASE_URL names something else."""
    os.environ["DATABASE_URL"] = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    os.environ["REDIS_URL"] = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    if not os.environ["DATABASE_URL"].startswith(("postgres://", "postgresql")):
        return "this benchmark needs PostgreSQL: set DATABASE_URL to a postgresql:// URL"
    return None


def main() -> int:
    args = parse_args()
    if args.serve is not None:
        kind, port = args.serve
        serve(kind, int(port))
        return 0
    require_wrk()  # fail before the setup work, not after it
    problem = _database_from_environment()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    exit_cleanly_on_sigterm()
    started = time.monotonic()
    try:
        with (
            throwaway_database("custos-bench") as database_url,
            tempfile.TemporaryDirectory(prefix="bench-customers-") as tmp,
        ):
            workdir = Path(tmp)
            settings = bench_settings(database_url)
            configure_logging(settings)
            print("setting up the database ...", flush=True)
            upgrade(settings)
            print(f"seeding {args.customers} customers ...", flush=True)
            seeded = seed(settings, args.customers, workdir)
            print(f"  done in {seeded.seconds:.1f} s", flush=True)
            print("driving the servers with wrk ...", flush=True)
            measured = measure(settings, seeded, workdir, args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except psycopg.OperationalError as exc:
        print(f"error: cannot use PostgreSQL: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    result = report(settings, seeded, measured, args)
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
