"""On the embedded default (SQLite, jobs inside `custos serve`), a delivery cut short by a
kill -9 of the server is sent again when the server starts: its job waited in the outbox."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from custos.config import Settings
from custos.migrate import upgrade
from custos.runtime import Runtime
from tests.factories import Factory, bearer
from tests.fault.harness import UNLIMITED, process_env
from tests.fault.test_postgres_restart import _serve
from tests.receiver import Answer, Receiver, free_port


@pytest.fixture
def sqlite_file(settings: Settings, tmp_path: Path) -> str:
    if settings.is_postgres:
        pytest.skip("the SQLite phase of the suite runs this (the embedded default)")
    return f"sqlite+aiosqlite:///{tmp_path / 'custos.db'}"


async def _ready(base: str) -> None:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(trust_env=False) as http:
        while True:
            try:
                if (await http.get(f"{base}/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            await asyncio.sleep(0.1)


async def test_a_delivery_cut_by_a_kill_is_sent_after_the_restart(
    sqlite_file: str, receiver: Receiver
) -> None:
    settings = Settings(
        environment="test",
        secret_key=secrets.token_urlsafe(48),
        database_url=sqlite_file,
        password_hash_profile="fast",
        log_level="ERROR",
        **UNLIMITED,
    )
    await asyncio.to_thread(upgrade, settings)
    runtime = Runtime.build(settings)
    await runtime.start()
    tenant = await Factory(runtime).tenant()
    await runtime.stop()
    seen: list[float] = []

    def answer(_request: object) -> Answer:
        seen.append(time.time())
        return Answer(204, delay=15 if len(seen) == 1 else 0)  # the first hangs

    receiver.script = answer
    env = process_env(settings)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = _serve(env, port)
    try:
        await _ready(base)
        async with httpx.AsyncClient(base_url=base, trust_env=False) as http:
            hook = await http.post(
                "/api/v1/webhooks",
                json={"url": f"{receiver.url}/embedded", "event_types": ["customer.*"]},
                headers=bearer(tenant.admin_key),
            )
            made = await http.post(
                "/api/v1/customers", json={"full_name": "Kept"}, headers=bearer(tenant.admin_key)
            )
            assert (hook.status_code, made.status_code) == (201, 201)
        deadline = time.monotonic() + 30
        while not seen:
            assert time.monotonic() < deadline, "the message was never sent"
            await asyncio.sleep(0.05)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=10)

        server = _serve(env, port)
        await _ready(base)
        deadline = time.monotonic() + 30
        while len(seen) < 2:
            assert time.monotonic() < deadline, "the restarted server did not send it again"
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient(base_url=base, trust_env=False) as http:
            while True:
                page = await http.get(
                    f"/api/v1/webhooks/{hook.json()['id']}/deliveries",
                    headers=bearer(tenant.admin_key),
                )
                [delivery] = page.json()["items"]
                if delivery["status"] == "succeeded" or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
        assert (delivery["status"], delivery["attempts"]) == ("succeeded", 1)
        ids = {r.webhook_id for r in receiver.for_path("/embedded")}
        assert len(ids) == 1, "the same message, by webhook-id"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
