"""The scanning and transforming endpoints."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap

import httpx
import pytest

from custos.config import Settings
from tests.factories import Factory, TenantHandle, bearer

TEXT = "Hi, I'm Amara Nwosu, mail amara.nwosu@example.com or call (415) 555-2671."


@pytest.fixture
async def tenant(factory: Factory) -> TenantHandle:
    return await factory.tenant()


class TestScan:
    async def test_one_text(self, raw_client: httpx.AsyncClient, tenant: TenantHandle) -> None:
        response = await raw_client.post(
            "/api/v1/privacy/pii-scan", json={"text": TEXT}, headers=bearer(tenant.admin_key)
        )
        assert response.status_code == 200, response.text
        entities = response.json()["entities"]
        assert [(e["type"], TEXT[e["start"] : e["end"]]) for e in entities] == [
            ("person", "Amara Nwosu"),
            ("email", "amara.nwosu@example.com"),
            ("phone", "(415) 555-2671"),
        ]
        assert all(set(e) == {"type", "start", "end", "score", "reason"} for e in entities)

    async def test_a_batch_answers_per_text_in_order(
        self, raw_client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        texts = ["nothing here", "SSN 123-45-6789", "ip 203.0.113.5 and 198.51.100.7"]
        response = await raw_client.post(
            "/api/v1/privacy/pii-scan", json={"texts": texts}, headers=bearer(tenant.admin_key)
        )
        results = response.json()["results"]
        assert [[e["type"] for e in r["entities"]] for r in results] == [
            [], ["ssn"], ["ip_address", "ip_address"],
        ]  # fmt: skip

    async def test_options_limit_types_and_scores(
        self, raw_client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        response = await raw_client.post(
            "/api/v1/privacy/pii-scan",
            json={"text": TEXT, "types": ["email", "phone"], "thresholds": {"phone": 0.99}},
            headers=bearer(tenant.admin_key),
        )
        assert [e["type"] for e in response.json()["entities"]] == ["email"]

    async def test_the_tenants_customer_names_are_known(
        self, client: httpx.AsyncClient, raw_client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        text = "Oluwaseun Adeyemi wants a refund."
        scan = {"text": text}
        before = await raw_client.post(
            "/api/v1/privacy/pii-scan", json=scan, headers=bearer(tenant.admin_key)
        )
        assert before.json()["entities"] == []
        await client.post(
            "/api/v1/customers",
            json={"full_name": "Oluwaseun Adeyemi"},
            headers=bearer(tenant.admin_key),
        )
        after = await raw_client.post(
            "/api/v1/privacy/pii-scan", json=scan, headers=bearer(tenant.admin_key)
        )
        assert [e["reason"] for e in after.json()["entities"]] == ["a known customer's name"]
        off = await raw_client.post(
            "/api/v1/privacy/pii-scan",
            json={**scan, "known_names": False},
            headers=bearer(tenant.admin_key),
        )
        assert off.json()["entities"] == []

    async def test_the_get_form_for_seed_era_clients(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        response = await client.get(
            "/api/v1/privacy/pii-scan", params={"text": TEXT}, headers=bearer(tenant.admin_key)
        )
        assert response.status_code == 200
        assert len(response.json()["entities"]) == 3

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"text": "a", "texts": ["b"]},
            {"texts": []},
            {"text": "x" * 100_001},
            {"texts": ["x"] * 1001},
            {"text": "a", "types": ["passport"]},
            {"text": "a", "min_score": 2},
            {"text": 42},
        ],
    )
    async def test_bad_requests_are_422(
        self, raw_client: httpx.AsyncClient, tenant: TenantHandle, body: dict[str, object]
    ) -> None:
        response = await raw_client.post(
            "/api/v1/privacy/pii-scan", json=body, headers=bearer(tenant.admin_key)
        )
        assert response.status_code in (413, 422), response.text

    async def test_a_too_long_query_text_is_422_and_not_echoed(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        text = "secret-" + "x" * 4000
        response = await client.get(
            "/api/v1/privacy/pii-scan", params={"text": text}, headers=bearer(tenant.admin_key)
        )
        assert response.status_code == 422
        assert "secret-" not in response.text


class TestQueryStringNeverLogged:
    async def test_the_access_log_and_metrics_never_hold_the_text(
        self, settings: Settings, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        script = textwrap.dedent(
            """
            import asyncio, os
            import httpx
            from custos.app import create_app
            from custos.config import Settings

            async def main():
                app = create_app(Settings(log_level="INFO", log_json=True))
                transport = httpx.ASGITransport(app=app)
                headers = {"Authorization": "Bearer " + os.environ["KEY"]}
                text = "canary.person@example.com"
                async with app.router.lifespan_context(app):
                    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                        ok = await c.get("/api/v1/privacy/pii-scan", params={"text": text},
                                         headers=headers)
                        bad = await c.get("/api/v1/privacy/pii-scan",
                                          params={"text": text, "min_score": "x"},
                                          headers=headers)
                        anon = await c.get("/api/v1/privacy/pii-scan", params={"text": text})
                        metrics = await c.get("/metrics")
                print("STATUS", ok.status_code, bad.status_code, anon.status_code, flush=True)
                print("METRICS", "canary" in metrics.text, flush=True)

            asyncio.run(main())
            """
        )
        env = {
            **os.environ,
            "KEY": tenant.admin_key,
            "DATABASE_URL": settings.database_url,
            "CUSTOS_SECRET_KEY": settings.secret_key.get_secret_value(),
            "CUSTOS_ENVIRONMENT": "test",
            "CUSTOS_PASSWORD_HASH_PROFILE": "fast",
            # Only its requests are under test: it must not take up this process's jobs.
            "CUSTOS_JOBS_IN_PROCESS": "false",
        }
        env.pop("REDIS_URL", None)
        # In a thread: this process's own background writers must be able to finish the
        # SQLite transactions they hold while the child runs.
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        output = done.stdout + done.stderr
        assert "STATUS 200 422 401" in done.stdout, output
        assert "METRICS False" in done.stdout
        logged = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        requests = [r for r in logged if r.get("event") == "request"]
        assert [r["status"] for r in requests if r["route"] == "/api/v1/privacy/pii-scan"] == [
            200, 422, 401,
        ]  # fmt: skip
        assert "canary" not in output
