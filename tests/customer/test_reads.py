"""GET /customers/{id} takes a one-round-trip path on PostgreSQL; it must answer exactly as
the generic path does, and leave nothing behind on the pooled connection."""

from __future__ import annotations

import httpx
import orjson
import pytest
import sqlalchemy as sa

from custos.auth.principal import Principal, PrincipalKind
from custos.config import Settings
from custos.customer import reads
from custos.db import Database
from tests.conftest import make_settings
from tests.factories import Factory, bearer

BASE = "/api/v1/customers"
FULL = {
    "full_name": "Zoë Ångström",
    "email": "zoe@example.com",
    "external_id": "crm-42",
    "phone": "+44 20 7946 0958",
    "company": "Acme",
    "address": {"line1": "1 High St", "city": "London", "postal_code": "N1", "country": "gb"},
    "customer_type": "business",
    "tags": ["vip", "beta"],
    "metadata": {"nested": {"list": [1, 2.5, "x", None, True]}, "unicode": "✓"},
}


async def test_the_read_equals_what_the_write_answered(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    tenant = await factory.tenant()
    headers = bearer(tenant.admin_key)
    made = await client.post(BASE, json=FULL, headers=headers)
    path = f"{BASE}/{made.json()['id']}"
    stats = await client.patch(
        f"/api/v1/internal/customers/{made.json()['id']}/statistics",
        json={
            "increment_id": "o-1",
            "orders": 3,
            "order_value": "1234.50",
            "currency": "GBP",
            "complaints": 1,
            "last_order_at": "2026-11-01T10:11:12.123456+02:00",
        },
        headers=headers,
    )
    assert stats.status_code == 200
    written = await client.patch(path, json={"status": "inactive"}, headers=headers)
    read = await client.get(path, headers=headers)
    assert read.status_code == 200
    assert read.json() == written.json()
    assert read.headers["ETag"] == written.headers["ETag"]
    assert read.headers["content-type"] == "application/json"
    legacy = await client.get(f"/api/customers/{made.json()['id']}", headers=headers)
    assert legacy.content == read.content


async def test_malformed_deleted_and_foreign_ids_are_404(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    owner, other = await factory.tenant(), await factory.tenant()
    made = await client.post(BASE, json={"full_name": "Mine"}, headers=bearer(owner.admin_key))
    customer_id = made.json()["id"]
    for key, probe in (
        (other.admin_key, customer_id),
        (owner.admin_key, "cus_'; DROP TABLE customers; --"),
        (owner.admin_key, "not-an-id"),
        (owner.admin_key, customer_id.lower()),
    ):
        response = await client.get(f"{BASE}/{probe}", headers=bearer(key))
        assert response.status_code == 404, probe
        assert response.headers["content-type"] == "application/problem+json"
    await client.delete(f"{BASE}/{customer_id}", headers=bearer(owner.admin_key))
    gone = await client.get(f"{BASE}/{customer_id}", headers=bearer(owner.admin_key))
    assert gone.status_code == 404


async def test_no_tenant_setting_outlives_the_read(
    client: httpx.AsyncClient, factory: Factory, settings: Settings, uses_postgres: bool
) -> None:
    if not uses_postgres:
        pytest.skip("the one-round-trip read and tenant settings exist on PostgreSQL only")
    tenant = await factory.tenant()
    made = await client.post(BASE, json={"full_name": "Once"}, headers=bearer(tenant.admin_key))
    reader = Principal(
        kind=PrincipalKind.api_key, id="key_x", tenant_id=tenant.id, scopes=frozenset()
    )
    # One connection in the pool: the check below runs on the very connection the read used.
    one_connection = make_settings(settings.database_url, db_pool_size=1, db_max_overflow=0)
    db = Database(one_connection)
    try:
        body, etag = await reads.customer_document(db, reader, made.json()["id"])
        assert etag == made.headers["ETag"]
        assert orjson.loads(body)["full_name"] == "Once"
        async with db.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            assert getattr(raw.driver_connection, "autocommit", None) is False
            leftover = await conn.scalar(sa.text("SELECT current_setting('app.tenant_id', true)"))
            visible = await conn.scalar(sa.text("SELECT count(*) FROM customers"))
        assert leftover in (None, "")
        assert visible == 0
        assert db.engine.pool.checkedin() == 1
    finally:
        await db.dispose()
