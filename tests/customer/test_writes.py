"""POST /customers takes a one-round-trip path on PostgreSQL (without an Idempotency-Key);
it must write and answer exactly as the generic path does, all or nothing, and leave
nothing behind on the pooled connection."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import psycopg
import pytest
import sqlalchemy as sa

from custos.auth.principal import Principal, PrincipalKind
from custos.config import Settings
from custos.customer import writes
from custos.customer.schemas import CustomerCreate
from custos.db import Database
from custos.models import AuditLog, Event
from custos.runtime import Runtime
from tests.conftest import make_settings
from tests.customer.test_reads import FULL
from tests.factories import Factory, bearer

BASE = "/api/v1/customers"
# What differs between two creates of the same body.
OWN = {"id", "email", "external_id", "created_at", "updated_at"}


async def _trail(runtime: Runtime, tenant_id: str, customer_id: str) -> tuple[Any, Any]:
    """The audit row's changes and the event's payload written for the customer."""
    async with runtime.db.transaction(tenant_id=tenant_id, write=False) as session:
        audit = (
            await session.execute(sa.select(AuditLog).where(AuditLog.target_id == customer_id))
        ).scalar_one()
        event = (
            await session.execute(sa.select(Event).where(Event.subject_id == customer_id))
        ).scalar_one()
    assert (audit.action, audit.target_type, event.type) == (
        "customer.created",
        "customer",
        "customer.created",
    )
    return audit.changes, event.payload


async def test_both_paths_write_and_answer_alike(
    client: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    tenant = await factory.tenant()
    headers = bearer(tenant.admin_key)
    fast = await client.post(BASE, json=FULL, headers=headers)
    # An Idempotency-Key takes the generic path (its claim shares the write's transaction).
    other = {**FULL, "email": "zoe.two@example.com", "external_id": "crm-43"}
    generic = await client.post(BASE, json=other, headers={**headers, "Idempotency-Key": "k1"})
    assert fast.status_code == generic.status_code == 201
    for response in (fast, generic):
        body = response.json()
        assert response.headers["ETag"] == f'"{body["id"]}.1"'
        assert response.headers["Location"] == f"{BASE}/{body['id']}"
        assert response.headers["content-type"] == "application/json"
        read = await client.get(f"{BASE}/{body['id']}", headers=headers)
        assert read.json() == body
    strip = lambda body: {k: v for k, v in body.items() if k not in OWN}  # noqa: E731
    assert strip(fast.json()) == strip(generic.json())
    assert fast.json()["created_at"] == fast.json()["updated_at"]

    fast_changes, fast_payload = await _trail(runtime, tenant.id, fast.json()["id"])
    generic_changes, generic_payload = await _trail(runtime, tenant.id, generic.json()["id"])
    assert fast_payload == {"customer": fast.json()}
    assert generic_payload == {"customer": generic.json()}
    assert set(fast_changes) == set(generic_changes)
    assert fast_changes["email"] == {"from": None, "to": "z***@example.com"}
    assert fast_changes["full_name"]["to"] != FULL["full_name"]  # masked, never plain


async def test_quotes_percent_signs_and_backslashes_arrive_exactly(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    """The fast path quotes its parameters into the statement text itself."""
    tenant = await factory.tenant()
    headers = bearer(tenant.admin_key)
    awkward = "O'Brien \\ 100%s %% %(name)s \"quoted\" \u00e9\u00df \U0001f600 $$ E'\\x00'"
    body = {
        "full_name": awkward,
        "company": "'); DROP TABLE customers; --",
        "tags": ["%s", "a'b", "back\\slash"],
        "metadata": {"note": awkward, "nested": {"k'ey": "%s%%"}, "n": 1.5},
    }
    made = await client.post(BASE, json=body, headers=headers)
    assert made.status_code == 201, made.text
    assert "etag" in made.headers  # the fast path's answer (no Idempotency-Key)
    read = (await client.get(f"{BASE}/{made.json()['id']}", headers=headers)).json()
    assert {k: read[k] for k in body} == body
    assert made.json() == read


async def test_a_refused_create_writes_nothing(
    client: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    tenant = await factory.tenant()
    headers = bearer(tenant.admin_key)
    first = await client.post(
        BASE, json={"full_name": "A", "email": "a@example.com"}, headers=headers
    )
    assert first.status_code == 201

    async def counts() -> tuple[int, int, int]:
        async with runtime.db.transaction(tenant_id=tenant.id, write=False) as session:
            return (
                await session.scalar(sa.text("SELECT count(*) FROM customers")),
                await session.scalar(sa.select(sa.func.count()).select_from(AuditLog)),
                await session.scalar(sa.select(sa.func.count()).select_from(Event)),
            )  # type: ignore[return-value]

    before = await counts()
    for clash in ({"email": "A@Example.com"}, {"external_id": None, "email": "a@example.com"}):
        refused = await client.post(BASE, json={"full_name": "B", **clash}, headers=headers)
        assert refused.status_code == 409
        assert refused.json()["errors"][0]["loc"] == ["body", "email"]
    assert await counts() == before


async def test_no_tenant_setting_outlives_the_create(
    factory: Factory, settings: Settings, uses_postgres: bool
) -> None:
    if not uses_postgres:
        pytest.skip("the one-round-trip create and tenant settings exist on PostgreSQL only")
    tenant = await factory.tenant()
    writer = Principal(
        kind=PrincipalKind.api_key,
        id="key_x",
        tenant_id=tenant.id,
        scopes=frozenset({"customers:write"}),
        tenant_settings={},
    )
    # One connection in the pool: the check below runs on the very connection the write used.
    db = Database(make_settings(settings.database_url, db_pool_size=1, db_max_overflow=0))
    try:
        response = await writes.create(db, writer, CustomerCreate(full_name="Once"), None)
        made = orjson.loads(response.body)
        assert response.headers["ETag"] == f'"{made["id"]}.1"'
        async with db.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            assert getattr(raw.driver_connection, "autocommit", None) is False
            leftover = await conn.scalar(sa.text("SELECT current_setting('app.tenant_id', true)"))
            visible = await conn.scalar(sa.text("SELECT count(*) FROM customers"))
        assert leftover in (None, "")
        assert visible == 0  # no tenant set: row-level security shows nothing
        assert db.engine.pool.checkedin() == 1
        async with db.transaction(tenant_id=tenant.id, write=False) as session:
            stored = await session.scalar(
                sa.text("SELECT full_name FROM customers WHERE id = :id"), {"id": made["id"]}
            )
        assert stored == "Once"
    finally:
        await db.dispose()


async def test_a_create_for_another_tenant_is_refused_by_row_level_security(
    factory: Factory, runtime: Runtime, uses_postgres: bool
) -> None:
    """The statements run under the caller's tenant: a row naming another is refused."""
    if not uses_postgres:
        pytest.skip("row-level security exists on PostgreSQL only")
    mine, theirs = await factory.tenant(), await factory.tenant()

    insert = (
        "INSERT INTO customers (id, tenant_id, full_name, customer_type, status, tags,"
        " metadata, order_count, total_order_value, complaint_count, search_text, version,"
        " created_at, updated_at) VALUES ('cus_01JDX0000000000000000000ZZ', %s, 'X',"
        " 'individual', 'active', '[]', '{}', 0, 0, 0, '', 1, now(), now())"
    )
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        await runtime.db.one_round_trip(mine.id, insert, [theirs.id])
