"""The `custos` command, run as an operator would, against the suite's database."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from custos.config import Settings
from tests.factories import bearer


@pytest.fixture(scope="module")
def custos(settings: Settings) -> Any:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "CUSTOS_SECRET_KEY": settings.secret_key.get_secret_value(),
        "CUSTOS_ENVIRONMENT": "test",
        "CUSTOS_PASSWORD_HASH_PROFILE": "fast",
        "CUSTOS_LOG_LEVEL": "WARNING",
    }
    env.pop("REDIS_URL", None)

    async def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # In a thread: the suite's event loop keeps serving its own background work (audit
        # sealing holds SQLite's write lock for a moment), as a real server would.
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", "from custos.cli import main; main()", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result

    return run


class TestCli:
    async def test_json_output_creates_working_credentials(
        self, custos: Any, client: httpx.AsyncClient
    ) -> None:
        slug = f"cli-{secrets.token_hex(4)}"
        tenant = json.loads(
            (await custos("create-tenant", "--slug", slug, "--name", "CLI", "--json")).stdout
        )
        assert tenant["slug"] == slug
        user = json.loads(
            (
                await custos(
                    "create-user",
                    "--tenant",
                    slug,
                    "--email",
                    f"ops@{slug}.example",
                    "--role",
                    "viewer",
                    "--json",
                )
            ).stdout
        )
        assert len(user["password"]) >= 12
        key = json.loads(
            (
                await custos(
                    "create-api-key",
                    "--tenant",
                    slug,
                    "--name",
                    "ci",
                    "--scopes",
                    "users:read,audit:read",
                    "--json",
                )
            ).stdout
        )
        assert key["key"].startswith("cst_live_")
        listed = await client.get("/api/v1/users", headers=bearer(key["key"]))
        assert [u["email"] for u in listed.json()["items"]] == [user["email"]]
        signed_in = await client.post(
            "/api/v1/auth/login", json={"email": user["email"], "password": user["password"]}
        )
        assert signed_in.status_code == 200
        audit = await client.get("/api/v1/audit", headers=bearer(key["key"]))
        made_by_cli = [e for e in audit.json()["items"] if e["action"] != "auth.login"]
        assert {e["action"] for e in made_by_cli} == {
            "tenant.created",
            "user.created",
            "api_key.created",
        }
        assert {e["actor_type"] for e in made_by_cli} == {"system"}

    async def test_mistakes_are_one_line_errors_not_tracebacks(self, custos: Any) -> None:
        for args in (
            (
                "create-api-key",
                "--tenant",
                "no-such-tenant",
                "--name",
                "x",
                "--scopes",
                "users:read",
            ),
            ("create-api-key", "--tenant", "x", "--name", "x", "--scopes", "root:all"),
            ("create-tenant", "--slug", "Bad Slug", "--name", "x"),
        ):
            result = await custos(*args, check=False)
            assert result.returncode == 1
            assert result.stderr.startswith("error: ")
            assert "Traceback" not in result.stderr

    def test_production_refuses_the_default_secret(self, settings: Settings) -> None:
        env = {
            **os.environ,
            "CUSTOS_ENVIRONMENT": "production",
            "DATABASE_URL": settings.database_url,
        }
        env.pop("CUSTOS_SECRET_KEY", None)
        result = subprocess.run(
            [sys.executable, "-c", "from custos.cli import main; main()", "migrate"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert "CUSTOS_SECRET_KEY" in result.stderr

    async def test_openapi_is_written(self, custos: Any, tmp_path: Path) -> None:
        target = tmp_path / "openapi.json"
        await custos("openapi", "--output", str(target))
        schema = json.loads(target.read_text())
        assert "/api/v1/users" in schema["paths"]
        assert "/api/customers" not in schema["paths"]
