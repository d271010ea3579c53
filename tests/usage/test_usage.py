"""Usage metering: a known sequence of requests gives exactly those figures, per tenant, per
key, per route and status class; reports by hour and day; the roll-up into days; nothing
counted is lost at shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from custos.config import Settings
from custos.db import Database
from custos.models import UsageDaily, UsageRecord
from custos.runtime import Runtime
from custos.usage.latency import BOUNDS_MS, bucket_of, percentile
from custos.usage.meter import UsageMeter
from custos.usage.service import roll_up
from tests.conftest import make_settings, runtime_with
from tests.factories import Factory, TenantHandle, access_token, bearer, client_for

MISSING = "/api/v1/customers/cus_00000000000000000000000000"


@pytest.fixture
async def metered(settings: Settings) -> AsyncIterator[Runtime]:
    """A runtime that flushes only when told, so a test knows exactly what was written."""
    async with runtime_with(settings.database_url, usage_flush_seconds=300) as runtime:
        yield runtime


async def _flush(runtime: Runtime) -> None:
    assert runtime.usage is not None
    await runtime.usage.flush()


async def _report(
    client: httpx.AsyncClient, key: str, path: str = "/api/v1/usage", **params: Any
) -> Any:
    response = await client.get(path, params=params, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


async def _known_sequence(
    client: httpx.AsyncClient, factory: Factory, tenant: TenantHandle
) -> tuple[str, str]:
    """Nine metered requests by two keys, and three that are not metered (no tenant)."""
    writer = await factory.key(tenant.id, ["customers:read", "customers:write"], name="writer")
    reader = await factory.key(tenant.id, ["customers:read"], name="reader")
    expected = [
        *[("GET", "/api/v1/auth/me", writer, None, 200)] * 3,
        *[("GET", MISSING, writer, None, 404)] * 2,
        ("POST", "/api/v1/customers", writer, {"full_name": "Metered"}, 201),
        ("GET", "/api/v1/users", writer, None, 403),
        *[("GET", "/api/v1/customers", reader, None, 200)] * 2,
    ]
    for method, path, key, body, status in expected:
        response = await client.request(method, path, json=body, headers=bearer(key))
        assert response.status_code == status, (path, response.text)
    # Without a tenant there is nobody to meter: public routes and refused credentials.
    assert (await client.get("/api/v1/docs/scopes")).status_code == 200
    assert (await client.get("/api/v1/users")).status_code == 401
    assert (await client.get("/api/v1/auth/me", headers=bearer("cst_live_nope"))).status_code == 401
    return writer, reader


async def _key_id(client: httpx.AsyncClient, tenant: TenantHandle, name: str) -> str:
    keys = await client.get("/api/v1/api-keys", headers=bearer(tenant.admin_key))
    return next(k["id"] for k in keys.json()["items"] if k["name"] == name)


class TestExactFigures:
    async def test_a_known_sequence_gives_exactly_its_counts(
        self, metered: Runtime, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        async with client_for(metered) as client:
            await _known_sequence(client, factory, tenant)
            await _flush(metered)
            totals = (await _report(client, tenant.admin_key))["totals"]
            by_route = await _report(client, tenant.admin_key, group_by="route")
            by_class = await _report(client, tenant.admin_key, group_by="status_class")
            by_key = await _report(client, tenant.admin_key, group_by="api_key")
            by_method = await _report(client, tenant.admin_key, group_by="method")
            writer_id = await _key_id(client, tenant, "writer")
            reader_id = await _key_id(client, tenant, "reader")
            errors_only = await _report(client, tenant.admin_key, status_class="4xx")

        assert totals["requests"] == 9
        assert totals["status_classes"] == {"2xx": 6, "4xx": 3}
        assert totals["errors"] == 3
        assert totals["server_errors"] == 0
        assert totals["error_rate"] == round(3 / 9, 6)
        assert totals["request_bytes"] > 0
        assert totals["response_bytes"] > 0
        assert 0 < totals["latency_p50_ms"] <= totals["latency_p95_ms"]

        def counts(report: dict[str, Any]) -> dict[str, int]:
            return {p["group"]: p["requests"] for p in report["series"]}

        assert counts(by_route) == {
            "/api/v1/auth/me": 3,
            "/api/v1/customers/{customer_id}": 2,
            "/api/v1/customers": 3,
            "/api/v1/users": 1,
        }
        assert counts(by_class) == {"2xx": 6, "4xx": 3}
        assert counts(by_key) == {writer_id: 7, reader_id: 2}
        assert counts(by_method) == {"GET": 8, "POST": 1}
        assert errors_only["totals"]["requests"] == 3
        assert {p["start"] for p in by_route["series"]} == {
            datetime.now(UTC).strftime("%Y-%m-%dT00:00:00Z")
        }

    async def test_one_keys_usage_and_by_hour(self, metered: Runtime, factory: Factory) -> None:
        tenant = await factory.tenant()
        async with client_for(metered) as client:
            await _known_sequence(client, factory, tenant)
            await _flush(metered)
            writer_id = await _key_id(client, tenant, "writer")
            key_path = f"/api/v1/api-keys/{writer_id}/usage"
            of_key = await _report(client, tenant.admin_key, key_path, group_by="status_class")
            hourly = await _report(client, tenant.admin_key, granularity="hour")
        assert of_key["totals"]["requests"] == 7
        assert {p["group"]: p["requests"] for p in of_key["series"]} == {"2xx": 4, "4xx": 3}
        # Every hour of the last day is there, zeros included; this hour holds the nine.
        assert len(hourly["series"]) in (24, 25)
        assert [p["requests"] for p in hourly["series"] if p["requests"]] == [9]
        assert hourly["series"][0]["latency_p50_ms"] is None

    async def test_users_are_metered_as_themselves(
        self, metered: Runtime, factory: Factory, raw_client: httpx.AsyncClient
    ) -> None:
        tenant = await factory.tenant()
        token = await access_token(raw_client, tenant.admin)
        async with client_for(metered) as client:
            for _ in range(2):
                await client.get("/api/v1/auth/me", headers=bearer(token))
            await _flush(metered)
            report = await _report(client, tenant.admin_key, group_by="principal")
        assert {p["group"]: p["requests"] for p in report["series"]} == {tenant.admin.id: 2}


class TestIsolation:
    async def test_a_tenant_sees_only_its_own_usage_and_the_platform_sees_all(
        self, metered: Runtime, factory: Factory, raw_client: httpx.AsyncClient
    ) -> None:
        first, second = await factory.tenant(), await factory.tenant()
        operator = await access_token(raw_client, await factory.platform_admin())
        async with client_for(metered) as client:
            await _known_sequence(client, factory, first)
            await _flush(metered)
            writer_id = await _key_id(client, first, "writer")
            others = await _report(client, second.admin_key)
            probing = await _report(client, second.admin_key, principal_id=writer_id)
            foreign_key = await client.get(
                f"/api/v1/api-keys/{writer_id}/usage", headers=bearer(second.admin_key)
            )
            platform = await _report(client, operator, "/api/admin/usage", group_by="tenant")
            one_tenant = await _report(client, operator, "/api/admin/usage", tenant_id=first.id)
            refused = await client.get("/api/admin/usage", headers=bearer(first.admin_key))
        assert others["totals"]["requests"] == 0
        assert probing["totals"]["requests"] == 0
        assert foreign_key.status_code == 404
        assert {p["group"]: p["requests"] for p in platform["series"]}[first.id] == 9
        assert one_tenant["totals"]["requests"] == 9
        assert refused.status_code == 403


class TestQueries:
    @pytest.mark.parametrize(
        "params",
        [
            {"granularity": "hour", "since": "2020-01-01T00:00:00Z"},
            {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            {"since": "2020-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            {"group_by": "tenant"},
            {"granularity": "minute"},
            {"status_class": "6xx"},
            {"since": "2026-01-01T00:00:00"},
        ],
    )
    async def test_bad_ranges_and_options_are_refused(
        self, client: httpx.AsyncClient, factory: Factory, params: dict[str, str]
    ) -> None:
        tenant = await factory.tenant()
        response = await client.get(
            "/api/v1/usage", params=params, headers=bearer(tenant.admin_key)
        )
        assert response.status_code == 422

    def test_percentiles_from_the_latency_buckets(self) -> None:
        # Ten requests of 2 ms and one of 900 ms: the median is exact, the 95th the slow one.
        histogram = [(bucket_of(2.0), 10, 20.0), (bucket_of(900.0), 1, 900.0)]
        assert percentile(histogram, 0.5) == 2.0
        assert percentile(histogram, 0.95) == 900.0
        assert percentile([], 0.5) is None
        assert bucket_of(0.05) == 0
        assert bucket_of(10**9) == len(BOUNDS_MS)


async def _insert(db: Database, tenant_id: str, minute: int, **values: Any) -> None:
    row = {
        "tenant_id": tenant_id,
        "minute": minute,
        "principal_type": "api_key",
        "principal_id": "key_x",
        "route": "/api/v1/customers",
        "method": "GET",
        "status": 200,
        "latency_bucket": bucket_of(5.0),
        "requests": 1,
        "duration_ms": 5.0,
        "request_bytes": 0,
        "response_bytes": 100,
    }
    row.update(values)
    async with db.transaction(system=True) as session:
        await session.execute(sa.insert(UsageRecord), [row])


class TestRollUp:
    async def test_old_minutes_become_days_with_the_same_figures(
        self, runtime: Runtime, factory: Factory, client: httpx.AsyncClient
    ) -> None:
        tenant = await factory.tenant()
        day = int(datetime.now(UTC).timestamp() // 86_400) - 20  # older than 14 days
        for minute, status, requests in ((5, 200, 3), (600, 500, 2), (601, 200, 4)):
            await _insert(
                runtime.db, tenant.id, day * 1440 + minute, status=status, requests=requests
            )
        start = datetime.fromtimestamp(day * 86_400, UTC)
        window = {
            "since": start.isoformat(),
            "until": (start + timedelta(days=1)).isoformat(),
        }

        async def figures() -> Any:
            return (await _report(client, tenant.admin_key, **window))["totals"]

        before = await figures()
        await roll_up(runtime.db, runtime.settings)
        after = await figures()
        async with runtime.db.transaction(tenant_id=tenant.id, write=False) as session:
            raw = await session.scalar(
                sa.select(sa.func.count()).where(UsageRecord.tenant_id == tenant.id)
            )
            daily = await session.scalar(
                sa.select(sa.func.sum(UsageDaily.requests)).where(UsageDaily.tenant_id == tenant.id)
            )
        assert before["requests"] == 9
        assert before["status_classes"] == {"2xx": 7, "5xx": 2}
        assert after == before
        assert raw == 0
        assert daily == 9
        hourly = await client.get(
            "/api/v1/usage",
            params={**window, "granularity": "hour"},
            headers=bearer(tenant.admin_key),
        )
        assert hourly.status_code == 422  # hours are kept for the raw retention only

    async def test_days_past_the_daily_retention_are_deleted(
        self, runtime: Runtime, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        today = int(datetime.now(UTC).timestamp() // 86_400)
        await _insert(runtime.db, tenant.id, (today - 500) * 1440)
        await roll_up(runtime.db, runtime.settings)  # to a day row, 500 days old
        await roll_up(runtime.db, runtime.settings)  # and gone
        async with runtime.db.transaction(tenant_id=tenant.id, write=False) as session:
            left = await session.scalar(
                sa.select(sa.func.count()).where(UsageDaily.tenant_id == tenant.id)
            )
        assert left == 0


class TestBuffer:
    async def test_what_was_counted_is_written_at_shutdown(
        self, settings: Settings, factory: Factory, runtime: Runtime
    ) -> None:
        tenant = await factory.tenant()
        own = Runtime.build(make_settings(settings.database_url, usage_flush_seconds=300))
        await own.start()
        async with client_for(own) as client:
            for _ in range(4):
                await client.get("/api/v1/auth/me", headers=bearer(tenant.admin_key))
        await own.stop()  # a graceful shutdown: SIGTERM to uvicorn ends here
        async with runtime.db.transaction(tenant_id=tenant.id, write=False) as session:
            written = await session.scalar(
                sa.select(sa.func.sum(UsageRecord.requests)).where(
                    UsageRecord.tenant_id == tenant.id
                )
            )
        assert written == 4

    async def test_a_failed_flush_keeps_the_counts_and_a_full_buffer_drops_new_ones(
        self, tmp_path: Any
    ) -> None:
        unreachable = make_settings(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/usage.db")
        db = Database(unreachable)
        meter = UsageMeter(db, flush_seconds=300, max_rows=2)
        try:
            for route in ("/a", "/a", "/b", "/c"):
                meter.record("ten_x", "api_key", "key_x", route, "GET", 200, 0.01, 0, 10)
            assert meter.pending == 2  # /a twice in one row, /b; /c did not fit
            assert await meter.flush() == 0
            assert meter.pending == 2  # kept for the next flush
        finally:
            await db.dispose()
