from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from custos.app import create_app
from custos.config import Settings
from custos.kit.routing import CustosRoute
from custos.runtime import Runtime
from tests.factories import Factory, bearer

PROBLEM = "application/problem+json"


class TestProblemDetails:
    async def test_oversized_body_is_413_with_or_without_content_length(
        self, client: httpx.AsyncClient, factory: Factory, settings: Settings
    ) -> None:
        tenant = await factory.tenant()
        big = b'{"email": "a@example.com", "password": "' + b"x" * settings.max_body_bytes + b'"}'
        declared = await client.post(
            "/api/v1/users",
            content=big,
            headers={**bearer(tenant.admin_key), "Content-Type": "application/json"},
        )
        assert declared.status_code == 413
        assert declared.headers["content-type"] == PROBLEM

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(big), 65_536):
                yield big[start : start + 65_536]

        streamed = await client.post(
            "/api/v1/users",
            content=chunks(),
            headers={**bearer(tenant.admin_key), "Content-Type": "application/json"},
        )
        assert streamed.status_code == 413

    @pytest.mark.parametrize(
        "raw",
        [
            b'{"name": "x", "slug": "ok-slug", "settings": {"k": "\\ud800"}}',
            b'{"name": "\\udfff", "slug": "ok-slug"}',
            b'{"name": "x", "slug": ',
            b"[" * 5000 + b"]" * 5000,
            b'{"name": "x", "slug": "ok-slug", "settings": ' + b'{"a":' * 3000 + b"1" + b"}" * 3001,
            b"\xff\xfe\x00",
        ],
    )
    async def test_hostile_json_is_a_422_never_a_500(
        self, client: httpx.AsyncClient, factory: Factory, raw: bytes
    ) -> None:
        from tests.factories import login

        operator = await factory.platform_admin()
        token = (await login(client, operator))["access_token"]
        response = await client.post(
            "/api/admin/tenants",
            content=raw,
            headers={**bearer(token), "Content-Type": "application/json"},
        )
        assert response.status_code == 422
        body = response.json()
        assert body["type"] == "urn:custos:problem:validation-error"
        assert body["request_id"] == response.headers["x-request-id"]

    async def test_the_nul_character_is_refused_wherever_it_comes(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        """PostgreSQL stores no NUL in text or JSON: a 422 before any write, on SQLite too."""
        tenant = await factory.tenant()
        headers = {**bearer(tenant.admin_key), "Content-Type": "application/json"}
        created = await client.post(
            "/api/v1/customers",
            json={"full_name": "Ada", "email": "ada@example.com"},
            headers=bearer(tenant.admin_key),
        )
        assert created.status_code == 201
        customer_id = created.json()["id"]
        refusals = [
            await client.post(
                "/api/v1/customers",
                content=b'{"full_name": "A\\u0000B", "email": "nul@example.com"}',
                headers=headers,
            ),
            await client.patch(
                f"/api/v1/customers/{customer_id}",
                content=b'{"metadata": {"deep": ["x\\u0000"]}}',
                headers={**headers, "Content-Type": "application/merge-patch+json"},
            ),
            await client.get("/api/v1/customers?q=a%00b", headers=bearer(tenant.admin_key)),
            await client.get("/api/v1/customers/cus_%00", headers=bearer(tenant.admin_key)),
        ]
        for response in refusals:
            assert response.status_code == 422, response.text
            assert response.headers["content-type"] == PROBLEM
            problem = response.json()
            assert "NUL" in problem["detail"] + " ".join(
                e["msg"] for e in problem.get("errors", [])
            )
        listed = await client.get("/api/v1/customers", headers=bearer(tenant.admin_key))
        assert [c["email"] for c in listed.json()["items"]] == ["ada@example.com"]
        # An escaped backslash before u0000 is the text "\\u0000", which is stored as sent.
        text = await client.post(
            "/api/v1/customers",
            content=b'{"full_name": "A\\\\u0000B", "email": "text@example.com"}',
            headers=headers,
        )
        assert text.status_code == 201, text.text
        assert text.json()["full_name"] == "A\\u0000B"

    async def test_nul_where_no_check_looks_is_a_422_not_a_500(
        self, client: httpx.AsyncClient, factory: Factory, settings: Settings
    ) -> None:
        """A form field reaches the database as given: PostgreSQL refuses the NUL, and the
        error handler answers for it. SQLite stores it, so the look-up just finds nobody."""
        await factory.tenant()
        response = await client.post(
            "/api/v1/oauth/token",
            data={"grant_type": "password", "username": "a\x00b@example.com", "password": "x"},
        )
        if settings.is_postgres:
            assert response.status_code == 422, response.text
            assert "NUL" in response.json()["detail"]
        else:
            assert response.status_code == 400, response.text
            assert response.json()["detail"] == "The email or password is wrong"

    @pytest.mark.parametrize(
        ("body", "refused"),
        [
            (b'{"a": "x\\u0000"}', True),  # the escape
            (b'{"a": "x\\\\u0000"}', False),  # an escaped backslash, then "u0000": text
            (b'{"a": "x\\\\\\u0000"}', True),  # an escaped backslash, then the escape
            (b'{"a": "\\u0000x", "b": 1}', True),
            (b'{"a": "x\\u00001"}', True),
            (b'{"a": "x\\u0001"}', False),
        ],
    )
    async def test_the_json_parser_refuses_only_a_real_nul_escape(
        self, body: bytes, refused: bool
    ) -> None:
        import json

        from custos.kit.routing import OrjsonRequest

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        request = OrjsonRequest({"type": "http", "headers": []}, receive)
        if refused:
            with pytest.raises(json.JSONDecodeError, match="NUL"):
                await request.json()
        else:
            assert (await request.json())["a"].startswith("x")

    async def test_validation_errors_never_echo_the_input(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        response = await client.post(
            "/api/v1/users",
            json={"email": "secret-person@@example", "password": "hunter2"},
            headers=bearer(tenant.admin_key),
        )
        assert response.status_code == 422
        assert "secret-person" not in response.text
        assert "hunter2" not in response.text
        assert {e["loc"][-1] for e in response.json()["errors"]} == {"email", "password"}

    async def test_unknown_route_and_wrong_method_are_problems(
        self, client: httpx.AsyncClient
    ) -> None:
        missing = await client.get("/api/v1/nothing-here?email=someone@example.com")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == PROBLEM
        assert missing.json()["instance"] == "/api/v1/nothing-here"  # no query string
        wrong = await client.put("/health")
        assert wrong.status_code == 405
        assert wrong.headers["content-type"] == PROBLEM

    async def test_an_unexpected_error_is_a_500_problem_without_internals(
        self, settings: Settings, runtime: Runtime
    ) -> None:
        app = create_app(settings, runtime)

        @app.get("/boom")
        async def boom() -> None:
            raise RuntimeError("internal detail: /srv/secret/path")

        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            response = await c.get("/boom")
        assert response.status_code == 500
        assert response.headers["content-type"] == PROBLEM
        assert "secret" not in response.text
        assert "Traceback" not in response.text
        assert response.json()["request_id"] == response.headers["x-request-id"]
        assert response.headers["x-content-type-options"] == "nosniff"


class TestHeaders:
    async def test_every_response_has_a_request_id_and_security_headers(
        self, client: httpx.AsyncClient
    ) -> None:
        for response in (await client.get("/health"), await client.get("/api/v1/auth/me")):
            assert len(response.headers["x-request-id"]) == 32
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["cache-control"] == "no-store"
            assert "default-src 'none'" in response.headers["content-security-policy"]

    async def test_a_sane_incoming_request_id_is_kept_and_a_hostile_one_replaced(
        self, client: httpx.AsyncClient
    ) -> None:
        kept = await client.get("/health", headers={"X-Request-ID": "abc-123.def"})
        assert kept.headers["x-request-id"] == "abc-123.def"
        replaced = await client.get("/health", headers={"X-Request-ID": "x\r\nSet-Cookie: a=b"})
        assert replaced.headers["x-request-id"] != "x\r\nSet-Cookie: a=b"
        assert "set-cookie" not in replaced.headers

    async def test_cors_follows_the_settings(self, settings: Settings, runtime: Runtime) -> None:
        configured = Settings(
            **{**settings.model_dump(), "cors_origins": ["https://console.example"]}
        )
        app = create_app(configured, runtime)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            allowed = await c.options(
                "/api/v1/users",
                headers={
                    "Origin": "https://console.example",
                    "Access-Control-Request-Method": "GET",
                },
            )
            other = await c.get("/health", headers={"Origin": "https://evil.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://console.example"
        assert "access-control-allow-origin" not in other.headers


class TestRouting:
    def test_every_route_parses_json_with_the_strict_parser(self, app: Any) -> None:
        api_routes = [
            rc for rc in iter_route_contexts(app.routes) if rc.path.startswith(("/api", "/health"))
        ]
        assert api_routes
        assert [rc.path for rc in api_routes if not isinstance(rc.route, CustosRoute)] == []
