from __future__ import annotations

from typing import Any

import httpx

from tests.factories import Factory, bearer


class TestOperations:
    async def test_liveness_and_readiness(self, client: httpx.AsyncClient, settings: Any) -> None:
        assert (await client.get("/health")).json() == {"status": "ok"}
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"]["database"]["status"] == "ok"
        expected_redis = "ok" if settings.redis_url else "not_configured"
        assert ready.json()["checks"]["redis"]["status"] == expected_redis

    async def test_detailed_health_reports_each_component_with_latency(
        self, client: httpx.AsyncClient, uses_postgres: bool
    ) -> None:
        body = (await client.get("/health/detailed")).json()
        database = body["components"]["database"]
        assert database["status"] == "ok"
        assert database["latency_ms"] >= 0
        assert database["backend"] == ("postgresql" if uses_postgres else "sqlite")
        assert body["components"]["auth_cache"]["status"] in ("ok", "degraded")

    async def test_metrics_count_by_route_template_never_by_id(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        await client.get(f"/api/v1/users/{tenant.admin.id}", headers=bearer(tenant.admin_key))
        text = (await client.get("/metrics")).text
        assert 'route="/api/v1/users/{user_id}"' in text
        assert tenant.admin.id not in text
        assert "http_request_duration_seconds_bucket" in text

    async def test_openapi_offers_both_schemes_on_secured_operations(
        self, client: httpx.AsyncClient
    ) -> None:
        schema = (await client.get("/openapi.json")).json()
        assert set(schema["components"]["securitySchemes"]) == {"OAuth2", "APIKey"}
        users = schema["paths"]["/api/v1/users"]["get"]["security"]
        assert users == [{"OAuth2": ["users:read"]}, {"APIKey": []}]
        me = schema["paths"]["/api/v1/auth/me"]["get"]["security"]
        assert me == [{"OAuth2": []}, {"APIKey": []}]
        assert "security" not in schema["paths"]["/health"]["get"]
        assert "security" not in schema["paths"]["/api/v1/auth/login"]["post"]
