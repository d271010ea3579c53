"""Every event is also written to an S3-compatible bucket (moto's S3 server here), one
object per event, matching the event log one for one."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import httpx
import pytest
import sqlalchemy as sa
from moto.server import ThreadedMotoServer

from custos.config import Settings
from custos.event.publishing import delete_objects, object_key, rewrite_objects
from custos.runtime import Runtime
from custos.worker.app import create_job_app, run_until_idle
from tests.conftest import make_settings
from tests.factories import Factory, TenantHandle, bearer
from tests.receiver import free_port

BUCKET = "custos-events"


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _s3(url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
async def publishing(settings: Settings, s3_url: str) -> AsyncIterator[Runtime]:
    """A worker's runtime with publishing on, sharing the suite's database."""
    _s3(s3_url).create_bucket(Bucket=BUCKET)
    own = make_settings(
        settings.database_url,
        events_bucket=BUCKET,
        events_prefix="custos/events",
        s3_endpoint_url=s3_url,
        s3_access_key_id="testing",
        s3_secret_access_key="testing",
    )
    runtime = Runtime.build(own)
    await runtime.start()
    yield runtime
    await runtime.stop()


async def _run_jobs(runtime: Runtime) -> None:
    job_app = create_job_app(runtime.settings)
    async with job_app.open_async():
        await run_until_idle(runtime, job_app)


def _objects(url: str, prefix: str) -> dict[str, Any]:
    s3 = _s3(url)
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
            found[item["Key"]] = json.loads(body)
    return found


async def _log(client: httpx.AsyncClient, tenant: TenantHandle) -> list[dict[str, Any]]:
    page = await client.get(
        "/api/v1/events", params={"limit": 1000}, headers=bearer(tenant.admin_key)
    )
    items: list[dict[str, Any]] = page.json()["items"]
    return items


class TestPublishing:
    def test_the_key_names_tenant_hour_and_event(self) -> None:
        at = datetime(2026, 11, 22, 8, 15, tzinfo=UTC)
        assert (
            object_key("custos/events/", "ten_1", at, "evt_1")
            == "custos/events/ten_1/2026/11/22/08/evt_1.json"
        )
        assert object_key("", "ten_1", at, "evt_1") == "ten_1/2026/11/22/08/evt_1.json"

    async def test_the_bucket_matches_the_event_log_one_for_one(
        self,
        client: httpx.AsyncClient,
        raw_client: httpx.AsyncClient,
        factory: Factory,
        publishing: Runtime,
        s3_url: str,
    ) -> None:
        tenant = await factory.tenant()
        headers = bearer(tenant.admin_key)
        for i in range(5):
            await client.post("/api/v1/customers", json={"full_name": f"P{i}"}, headers=headers)
        await raw_client.post(
            "/api/v1/customers/batch",
            json={"items": [{"full_name": f"Batch {i}"} for i in range(20)]},
            headers=headers,
        )
        await client.post("/api/v1/events/trigger", json={}, headers=headers)
        await _run_jobs(publishing)

        log = await _log(client, tenant)
        assert len(log) == 27  # the admin key, 5 + 20 customers, one test event
        stored = _objects(s3_url, f"custos/events/{tenant.id}/")
        expected = {
            object_key(
                "custos/events",
                tenant.id,
                datetime.fromisoformat(e["timestamp"]),
                e["id"],
            ): e
            for e in log
        }
        assert stored == expected

    @pytest.mark.usefixtures("publishing")
    async def test_a_failed_upload_is_retried_by_a_job_of_its_own(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        settings: Settings,
        s3_url: str,
    ) -> None:
        # A worker pointed at a bucket that does not exist yet.
        own = make_settings(
            settings.database_url,
            events_bucket="custos-later",
            s3_endpoint_url=s3_url,
            s3_access_key_id="testing",
            s3_secret_access_key="testing",
        )
        runtime = Runtime.build(own)
        await runtime.start()
        try:
            tenant = await factory.tenant()
            await client.post(
                "/api/v1/customers", json={"full_name": "Late"}, headers=bearer(tenant.admin_key)
            )
            await _run_jobs(runtime)
            assert "Contents" not in _s3(s3_url).list_objects_v2(Bucket=BUCKET, Prefix="x")
            retries = await _pending_publish_jobs(runtime)
            ids = [e["id"] for e in await _log(client, tenant)]
            assert set(ids) <= {event_id for job in retries for event_id in job}, retries
            _s3(s3_url).create_bucket(Bucket="custos-later")
            from custos.event.dispatch import publish_again

            await publish_again(runtime, tenant.id, ids)
            keys = _s3(s3_url).list_objects_v2(Bucket="custos-later", Prefix=f"events/{tenant.id}/")
            assert len(keys["Contents"]) == len(ids)
        finally:
            await runtime.stop()

    async def test_erasure_rewrites_and_deletes_objects(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        publishing: Runtime,
        s3_url: str,
    ) -> None:
        tenant = await factory.tenant()
        made = await client.post(
            "/api/v1/customers",
            json={"full_name": "Erased Person", "email": "erase.me@example.com"},
            headers=bearer(tenant.admin_key),
        )
        await _run_jobs(publishing)
        [event] = [e for e in await _log(client, tenant) if e["type"] == "customer.created"]
        key = object_key(
            "custos/events", tenant.id, datetime.fromisoformat(event["timestamp"]), event["id"]
        )
        assert "erase.me@example.com" in json.dumps(_objects(s3_url, key)[key])

        # The erasure rewrites the payload in the log and, by a job it queues, the object.
        erased = await client.post(
            f"/api/v1/privacy/erase/{made.json()['id']}",
            params={"immediate": "true"},
            headers=bearer(tenant.admin_key),
        )
        assert erased.status_code == 202, erased.text
        await _run_jobs(publishing)
        objects = _objects(s3_url, f"custos/events/{tenant.id}/")
        assert objects[key]["data"]["customer"] == {"id": made.json()["id"], "erased": True}
        assert "erase.me@example.com" not in json.dumps(objects)
        assert "Erased Person" not in json.dumps(objects)
        # The erasure's own events are published too, and name no one.
        types = {o["type"] for o in objects.values()}
        assert {"privacy.erasure_scheduled", "privacy.erasure_completed"} <= types
        assert await rewrite_objects(publishing, tenant.id, [event["id"]]) == 1

        await delete_objects(publishing, [key])
        assert _objects(s3_url, key) == {}


async def _pending_publish_jobs(runtime: Runtime) -> list[list[str]]:
    """The event ids of every queued `events.publish` job."""
    async with runtime.db.engine.connect() as conn:
        if runtime.db.is_postgres:
            rows = await conn.execute(
                sa.text(
                    "SELECT args FROM procrastinate_jobs"
                    " WHERE task_name = 'events.publish' AND status = 'todo'"
                )
            )
            return [r[0]["event_ids"] for r in rows]
        rows = await conn.execute(
            sa.text("SELECT args FROM job_outbox WHERE task_name = 'events.publish'")
        )
        return [json.loads(r[0])["event_ids"] for r in rows]
