"""Erasure: scheduled after a grace period, cancellable until it runs, then the person is
gone from every table, with a tombstone that holds no personal data."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from custos.app import create_app
from custos.config import Settings
from custos.feedback import dedup
from custos.feedback.service import fingerprint
from custos.kit.time import utcnow
from custos.models import (
    BulkOperationError,
    Customer,
    Event,
    Feedback,
    FeedbackBand,
    PrivacyRequest,
)
from custos.privacy import erasure
from custos.privacy.holders import registered
from custos.runtime import Runtime
from tests.bulk.helpers import csv_bytes, run_to_end, start_import
from tests.conftest import make_settings
from tests.factories import Factory, TenantHandle, bearer, configure_tenant
from tests.privacy.search import find_everywhere, find_in_cache, find_in_files
from tests.privacy.seed import seed_person


@pytest.fixture
async def tenant(factory: Factory) -> TenantHandle:
    return await factory.tenant()


async def _request(runtime: Runtime, tenant_id: str, request_id: str) -> PrivacyRequest:
    async with runtime.db.transaction(tenant_id=tenant_id, write=False) as session:
        found = await session.get(PrivacyRequest, request_id)
        assert found is not None
        return found


async def _erase_now(client: httpx.AsyncClient, tenant: TenantHandle, customer_id: str) -> str:
    """Schedule an erasure without the grace period; the request's id."""
    scheduled = await client.post(
        f"/api/v1/privacy/erase/{customer_id}",
        params={"immediate": "true"},
        headers=bearer(tenant.admin_key),
    )
    assert scheduled.status_code == 202, scheduled.text
    request_id: str = scheduled.json()["id"]
    return request_id


async def _make_due(runtime: Runtime, tenant_id: str, request_id: str) -> None:
    """The grace period passes."""
    async with runtime.db.transaction(tenant_id=tenant_id) as session:
        await session.execute(
            sa.update(PrivacyRequest)
            .where(PrivacyRequest.id == request_id)
            .values(scheduled_for=utcnow() - timedelta(seconds=1))
        )


class TestScheduling:
    async def test_erasure_waits_for_the_grace_period(
        self, client: httpx.AsyncClient, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        seeded = await seed_person(client, tenant)
        response = await client.post(
            f"/api/v1/privacy/erase/{seeded.customer_id}", headers=bearer(tenant.admin_key)
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["status"] == "scheduled"
        assert [h["status"] for h in body["history"]] == ["received", "verified", "scheduled"]
        ahead = datetime.fromisoformat(body["scheduled_for"]) - utcnow()
        assert timedelta(days=29, hours=23) < ahead <= timedelta(days=30)
        assert await erasure.run_due(runtime) == 0
        record = await client.get(
            f"/api/v1/customers/{seeded.customer_id}", headers=bearer(tenant.admin_key)
        )
        assert record.status_code == 200

    async def test_the_tenant_sets_its_own_grace_period(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        changed = await configure_tenant(
            client, factory, tenant.id, {"privacy": {"erasure_grace_days": 7}}
        )
        assert changed.status_code == 200, changed.text
        made = await client.post(
            "/api/v1/customers", json={"full_name": "Short Grace"}, headers=bearer(tenant.admin_key)
        )
        scheduled = await client.post(
            f"/api/v1/privacy/erase/{made.json()['id']}", headers=bearer(tenant.admin_key)
        )
        ahead = datetime.fromisoformat(scheduled.json()["scheduled_for"]) - utcnow()
        assert timedelta(days=6, hours=23) < ahead <= timedelta(days=7)

    async def test_invalid_privacy_settings_are_refused(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        for privacy in (
            {"erasure_grace_days": -1},
            {"free_text": "shout"},
            {"consent_purposes": ["Has Spaces"]},
            {"unknown": 1},
        ):
            response = await configure_tenant(client, factory, tenant.id, {"privacy": privacy})
            assert response.status_code == 422, privacy

    async def test_cancelling_within_the_grace_period_leaves_everything_intact(
        self, client: httpx.AsyncClient, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        seeded = await seed_person(client, tenant)
        admin = bearer(tenant.admin_key)
        before = (
            await client.get(f"/api/v1/privacy/export/{seeded.customer_id}", headers=admin)
        ).json()
        scheduled = await client.post(f"/api/v1/privacy/erase/{seeded.customer_id}", headers=admin)
        request_id = scheduled.json()["id"]
        cancelled = await client.post(
            f"/api/v1/privacy/requests/{request_id}/transitions",
            json={"status": "cancelled"},
            headers=admin,
        )
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        await _make_due(runtime, tenant.id, request_id)  # even once the date has passed
        assert await erasure.run_due(runtime) == 0
        after = (
            await client.get(f"/api/v1/privacy/export/{seeded.customer_id}", headers=admin)
        ).json()
        for holder in ("customers", "customer_notes", "consents", "users", "customer_merges"):
            assert after["holders"][holder] == before["holders"][holder], holder
        # Nothing can be cancelled twice, and a cancelled erasure cannot be revived.
        again = await client.post(
            f"/api/v1/privacy/requests/{request_id}/transitions",
            json={"status": "scheduled"},
            headers=admin,
        )
        assert again.status_code == 409

    async def test_a_second_erasure_of_the_same_person_is_a_conflict(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        made = await client.post(
            "/api/v1/customers", json={"full_name": "Twice"}, headers=bearer(tenant.admin_key)
        )
        path = f"/api/v1/privacy/erase/{made.json()['id']}"
        assert (await client.post(path, headers=bearer(tenant.admin_key))).status_code == 202
        second = await client.post(path, headers=bearer(tenant.admin_key))
        assert second.status_code == 409

    async def test_only_admins_skip_the_grace_period(
        self, client: httpx.AsyncClient, factory: Factory, tenant: TenantHandle
    ) -> None:
        made = await client.post(
            "/api/v1/customers", json={"full_name": "Hasty"}, headers=bearer(tenant.admin_key)
        )
        eraser = await factory.key(tenant.id, ["privacy:erase"])
        path = f"/api/v1/privacy/erase/{made.json()['id']}"
        refused = await client.post(path, params={"immediate": "true"}, headers=bearer(eraser))
        assert refused.status_code == 403
        allowed = await client.post(
            path, params={"immediate": "true"}, headers=bearer(tenant.admin_key)
        )
        assert allowed.status_code == 202

    async def test_unknown_and_foreign_customers_are_404(
        self, client: httpx.AsyncClient, factory: Factory, tenant: TenantHandle
    ) -> None:
        other = await factory.tenant()
        foreign = await client.post(
            "/api/v1/customers", json={"full_name": "Elsewhere"}, headers=bearer(other.admin_key)
        )
        for customer_id in ("cus_nope", foreign.json()["id"]):
            for path in ("erase", "anonymize"):
                response = await client.post(
                    f"/api/v1/privacy/{path}/{customer_id}", headers=bearer(tenant.admin_key)
                )
                assert response.status_code == 404, (path, customer_id)


class TestErasure:
    async def test_after_erasure_no_table_holds_the_person(
        self, client: httpx.AsyncClient, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        seeded = await seed_person(client, tenant)
        admin = bearer(tenant.admin_key)
        assert await find_everywhere(
            runtime, seeded.person.needles
        )  # the search does find them before
        scheduled = await client.post(f"/api/v1/privacy/erase/{seeded.customer_id}", headers=admin)
        request_id = scheduled.json()["id"]
        await _make_due(runtime, tenant.id, request_id)
        assert await erasure.run_due(runtime) >= 1

        assert await find_everywhere(runtime, seeded.person.needles) == {}
        done = await client.get(f"/api/v1/privacy/requests/{request_id}", headers=admin)
        body = done.json()
        assert body["status"] == "completed"
        assert [h["status"] for h in body["history"]][-2:] == ["processing", "completed"]
        tombstone = body["result"]
        assert tombstone["records"] == 2  # the record and the one merged into it
        by_table = {(t["table"], t["action"]): t for t in tombstone["tables"]}
        assert by_table[("customers", "deleted")]["count"] == 2
        assert by_table[("customer_notes", "deleted")]["count"] == 2
        assert by_table[("customer_notes", "scrubbed")]["count"] == 1
        assert by_table[("users", "deleted")]["count"] == 1
        assert by_table[("consents", "deleted")]["count"] == 3
        assert by_table[("customer_merges", "deleted")]["count"] == 1
        assert by_table[("idempotency_keys", "deleted")]["count"] == 1
        assert by_table[("events", "scrubbed")]["count"] >= 4
        assert by_table[("audit_logs", "retained")]["count"] > 0
        assert "plain form" not in by_table[("audit_logs", "retained")]["note"]
        assert {t["table"] for t in tombstone["tables"]} == {h.name for h in registered()}
        # The person is gone, the rest of the tenant is not.
        gone = await client.get(f"/api/v1/customers/{seeded.customer_id}", headers=admin)
        assert gone.status_code == 404
        neighbour = await client.get(
            f"/api/v1/customers/{seeded.other_customer_id}/notes", headers=admin
        )
        assert neighbour.json()[0]["body"] == "Referred by [erased] ([erased], [erased])"
        # Their account no longer signs in, and a token from before stops working.
        assert (
            await client.get("/api/v1/privacy/me/export", headers=bearer(seeded.token))
        ).status_code == 401

    async def test_the_audit_chain_stays_valid_and_records_the_erasure(
        self, client: httpx.AsyncClient, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        seeded = await seed_person(client, tenant)
        admin = bearer(tenant.admin_key)
        request_id = await _erase_now(client, tenant, seeded.customer_id)
        await erasure.run_due(runtime)
        verify = await client.get("/api/v1/audit/verify", headers=admin)
        assert verify.json()["valid"] is True
        actions = await client.get(
            "/api/v1/audit",
            params={"target_id": request_id},
            headers=admin,
        )
        assert [e["action"] for e in actions.json()["items"]] == [
            "privacy.request_completed",
            "privacy.request_processing",
            "privacy.erasure_scheduled",
        ]

    async def test_erasure_completed_event_carries_the_tombstone_and_no_personal_data(
        self, client: httpx.AsyncClient, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        seeded = await seed_person(client, tenant)
        request_id = await _erase_now(client, tenant, seeded.customer_id)
        await erasure.run_due(runtime)
        async with runtime.db.transaction(tenant_id=tenant.id, write=False) as session:
            rows = await session.scalars(
                sa.select(Event)
                .where(Event.tenant_id == tenant.id, Event.type.startswith("privacy."))
                .order_by(Event.seq)
            )
            found = list(rows)
        assert [e.type for e in found][-3:] == [
            "privacy.erasure_scheduled",
            "privacy.request_processing",
            "privacy.erasure_completed",
        ]
        completed = found[-1].payload
        assert completed["request_id"] == request_id
        assert completed["customer_id"] == seeded.customer_id
        assert completed["method"] == "erase"
        assert any(t["table"] == "customers" for t in completed["tables"])
        text = str([e.payload for e in found]).lower()
        assert not any(n.lower() in text for n in seeded.person.needles)

    async def test_a_crash_half_way_is_rolled_back_and_resumed(
        self,
        client: httpx.AsyncClient,
        tenant: TenantHandle,
        runtime: Runtime,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        seeded = await seed_person(client, tenant)
        admin = bearer(tenant.admin_key)
        request_id = await _erase_now(client, tenant, seeded.customer_id)
        holders = registered()
        users_holder = next(h for h in holders if h.name == "users")

        async def crash(*_args: object) -> list[object]:
            raise ConnectionError("worker lost its database")

        monkeypatch.setattr(users_holder, "erase", crash)
        assert await erasure.run(runtime, tenant.id, request_id) == 0
        stuck = await _request(runtime, tenant.id, request_id)
        assert stuck.status == "processing"
        assert stuck.last_error == "ConnectionError"
        # Everything the holders before the crash did was rolled back with it.
        async with runtime.db.transaction(tenant_id=tenant.id, write=False) as session:
            assert await session.get(Customer, seeded.customer_id) is not None
        notes = await client.get(f"/api/v1/customers/{seeded.customer_id}/notes", headers=admin)
        assert len(notes.json()) == 2

        monkeypatch.undo()
        assert await erasure.run_due(runtime) >= 1  # the next run resumes it
        assert (await _request(runtime, tenant.id, request_id)).status == "completed"
        assert await find_everywhere(runtime, seeded.person.needles) == {}

    async def test_repeated_failures_end_in_failed_and_can_be_rescheduled(
        self,
        client: httpx.AsyncClient,
        tenant: TenantHandle,
        runtime: Runtime,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        made = await client.post(
            "/api/v1/customers",
            json={"full_name": "Stubborn Case"},
            headers=bearer(tenant.admin_key),
        )
        request_id = await _erase_now(client, tenant, made.json()["id"])
        notes_holder = next(h for h in registered() if h.name == "customer_notes")

        async def crash(*_args: object) -> list[object]:
            raise RuntimeError("disk full")

        monkeypatch.setattr(notes_holder, "erase", crash)
        for _ in range(erasure.MAX_ATTEMPTS):
            await erasure.run(runtime, tenant.id, request_id)
        failed = await _request(runtime, tenant.id, request_id)
        assert failed.status == "failed"
        assert failed.attempts == erasure.MAX_ATTEMPTS
        monkeypatch.undo()
        retried = await client.post(
            f"/api/v1/privacy/requests/{request_id}/transitions",
            json={"status": "scheduled", "immediate": True},
            headers=bearer(tenant.admin_key),
        )
        assert retried.status_code == 200, retried.text
        assert await erasure.run(runtime, tenant.id, request_id) == 1


class TestEveryStore:
    async def test_feedback_bulk_files_and_the_cache_lose_the_person_too(
        self, client: httpx.AsyncClient, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        seeded = await seed_person(client, tenant)
        admin, person = bearer(tenant.admin_key), seeded.person
        needles = person.needles
        # Feedback: their own complaint, and a mention of them in someone else's praise.
        for body in (
            {"customer_id": seeded.customer_id, "feedback_type": "complaint", "rating": 1,
             "content": f"My parcel never came. Call me on {person.phone}."},
            {"customer_id": seeded.other_customer_id, "feedback_type": "praise", "rating": 5,
             "subject": f"Thanks to {person.name}", "content": f"{person.email} sent me here."},
        ):  # fmt: skip
            posted = await client.post("/api/v1/feedback", json=body, headers=admin)
            assert posted.status_code == 201, posted.text
        # Bulk: an import whose file holds them (their row refused: the email is taken), and
        # an export that lists them.
        started = await start_import(
            client,
            tenant.admin_key,
            csv_bytes([["full_name", "email"], ["Someone Else", "someone.else@example.com"],
                       [person.name, person.email]]),
        )  # fmt: skip
        assert started.status_code == 202, started.text
        imported = await run_to_end(runtime, client, tenant.admin_key, started.json()["id"])
        assert (imported["created"], imported["failed"]) == (1, 1), imported
        # Reasons name the rule, not the row; one that quotes a value (a validator's own
        # message, say) is scrubbed too.
        async with runtime.db.transaction(tenant_id=tenant.id) as session:
            session.add(
                BulkOperationError(
                    tenant_id=tenant.id,
                    operation_id=imported["id"],
                    row=9,
                    field="email",
                    reason=f"{person.email} is not deliverable",
                )
            )
        exports = []
        for fmt in ("csv", "xlsx"):
            exported = await client.post(
                "/api/v1/bulk/export", json={"resource": "customers", "format": fmt}, headers=admin
            )
            exports.append(
                await run_to_end(runtime, client, tenant.admin_key, exported.json()["id"])
            )
        export = exports[0]
        assert person.email in (await client.get(export["download_url"], headers=admin)).text
        files = Path(runtime.settings.bulk_storage_dir)
        tenant_files = [files / "imports" / tenant.id, files / "exports" / tenant.id]
        assert all(find_in_files(d, needles) for d in tenant_files)
        # The cache: the record and a list page showing it.
        for _ in range(2):
            await client.get(f"/api/v1/customers/{seeded.customer_id}", headers=admin)
            await client.get("/api/v1/customers", params={"limit": 10}, headers=admin)
        assert await find_in_cache(runtime, tenant.id, needles)

        await _erase_now(client, tenant, seeded.customer_id)
        assert await erasure.run_due(runtime) >= 1

        assert await find_everywhere(runtime, needles) == {}
        assert [find_in_files(d, needles) for d in tenant_files] == [[], []]
        assert await find_in_cache(runtime, tenant.id, needles) == []
        for made in exports:
            gone = await client.get(made["download_url"], headers=admin)
            assert gone.status_code == 404, made["format"]
        # What was not theirs stays: the neighbour's feedback, scrubbed; the other import row.
        listed = await client.get(
            "/api/v1/feedback", params={"customer_id": seeded.other_customer_id}, headers=admin
        )
        [praise] = listed.json()["items"]
        assert (praise["subject"], praise["content"]) == (
            "Thanks to [erased]",
            "[erased] sent me here.",
        )
        # Its hash, sketch and band keys were made again from the scrubbed text.
        printed = fingerprint(praise["content"], seeded.other_customer_id)
        async with runtime.db.transaction(tenant_id=tenant.id, write=False) as session:
            stored = await session.get(Feedback, praise["id"])
            bands = set(
                await session.scalars(
                    sa.select(FeedbackBand.band).where(FeedbackBand.feedback_id == praise["id"])
                )
            )
        assert stored is not None
        assert (stored.content_hash, stored.sketch) == (
            printed.content_hash,
            dedup.encode(printed.sketch),
        )
        assert bands == set(printed.bands)
        others = await client.get("/api/v1/customers", params={"q": "Someone Else"}, headers=admin)
        assert [c["email"] for c in others.json()["items"]] == ["someone.else@example.com"]

    async def test_with_the_cache_store_down_the_erasure_completes_and_serves_no_copy(
        self,
        client: httpx.AsyncClient,
        tenant: TenantHandle,
        runtime: Runtime,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        admin = bearer(tenant.admin_key)
        made = await client.post(
            "/api/v1/customers",
            json={"full_name": "Cached Person", "email": "cached.person@example.com"},
            headers=admin,
        )
        customer_id = made.json()["id"]
        for _ in range(2):  # now cached
            assert (await client.get(f"/api/v1/customers/{customer_id}", headers=admin)).is_success

        async def store_down(*_args: object) -> None:
            raise ConnectionError("cache store unreachable")

        monkeypatch.setattr(runtime.read_cache, "erase", store_down)
        request_id = await _erase_now(client, tenant, customer_id)
        assert await erasure.run_due(runtime) >= 1

        assert (await _request(runtime, tenant.id, request_id)).status == "completed"
        gone = await client.get(f"/api/v1/customers/{customer_id}", headers=admin)
        assert gone.status_code == 404


class TestAnonymisation:
    async def test_the_record_stays_for_statistics_without_personal_data(
        self, client: httpx.AsyncClient, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        seeded = await seed_person(client, tenant)
        admin = bearer(tenant.admin_key)
        response = await client.post(
            f"/api/v1/privacy/anonymize/{seeded.customer_id}", headers=admin
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "completed"
        assert response.json()["result"]["method"] == "anonymize"
        record = (await client.get(f"/api/v1/customers/{seeded.customer_id}", headers=admin)).json()
        assert record["full_name"] == "[erased]"
        assert record["email"] is record["phone"] is record["external_id"] is None
        assert record["address"] == {"line1": None, "line2": None, "city": None, "region": None,
                                     "postal_code": None, "country": "US"}  # fmt: skip
        assert record["order_count"] == 2
        assert record["total_order_value"] == "120.50"
        assert record["tags"] == ["vip", "newsletter"]
        assert await find_everywhere(runtime, seeded.person.needles) == {}
        again = await client.post(f"/api/v1/privacy/anonymize/{seeded.customer_id}", headers=admin)
        assert again.status_code == 409


class TestJobs:
    async def test_the_jobs_are_registered_with_the_queue(self, app: object) -> None:
        job_app = app.state.job_app  # type: ignore[attr-defined]
        assert {"privacy.erase_due", "privacy.erase"} <= set(job_app.tasks)
        periodic = job_app.periodic_registry.periodic_tasks
        assert any(task.task.name == "privacy.erase_due" for task in periodic.values())

    async def test_the_embedded_worker_takes_up_due_erasures_when_it_starts(
        self, client: httpx.AsyncClient, settings: Settings, tenant: TenantHandle
    ) -> None:
        """A process that stopped with an erasure due (or half done) leaves it in its table;
        the next one to start carries it out without waiting for the minute job."""
        seeded = await seed_person(client, tenant)
        request_id = await _erase_now(client, tenant, seeded.customer_id)
        own = make_settings(settings.database_url, jobs_in_process=True)
        runtime = Runtime.build(own)
        app = create_app(own, runtime)
        async with app.router.lifespan_context(app):
            deadline = time.monotonic() + 20
            while (await _request(runtime, tenant.id, request_id)).status != "completed":
                assert time.monotonic() < deadline, "the erasure was not taken up at start"
                await asyncio.sleep(0.1)
            found = await find_everywhere(runtime, seeded.person.needles)
        assert found == {}

    async def test_idempotency_key_on_erase_answers_a_retry_with_the_same_request(
        self, client: httpx.AsyncClient, raw_client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        made = await client.post(
            "/api/v1/customers", json={"full_name": "Retry Me"}, headers=bearer(tenant.admin_key)
        )
        path = f"/api/v1/privacy/erase/{made.json()['id']}"
        headers = {**bearer(tenant.admin_key), "Idempotency-Key": "erase-once"}
        first = await client.post(path, headers=headers)
        again = await raw_client.post(path, headers=headers)
        assert (first.status_code, again.status_code) == (202, 202)
        assert again.json()["id"] == first.json()["id"]
        other = await raw_client.post(path, params={"immediate": "true"}, headers=headers)
        assert other.status_code == 422


KILLED_WORKER = """
import asyncio, os, sys
from custos.config import Settings
from custos.privacy import erasure
from custos.privacy.holders import registered
from custos.runtime import Runtime

async def main():
    runtime = Runtime.build(Settings())
    holder = next(h for h in registered() if h.name == "users")
    async def stall(ctx):
        print("erasing", flush=True)
        await asyncio.sleep(60)
    holder.erase = stall
    await erasure.run(runtime, os.environ["TENANT"], os.environ["REQUEST"])

asyncio.run(main())
"""


class TestKilledWorker:
    async def test_kill_9_in_the_middle_loses_nothing_and_the_next_run_finishes(
        self, client: httpx.AsyncClient, settings: Settings, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        seeded = await seed_person(client, tenant)
        request_id = await _erase_now(client, tenant, seeded.customer_id)
        env = {
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "CUSTOS_SECRET_KEY": settings.secret_key.get_secret_value(),
            "CUSTOS_ENVIRONMENT": "test",
            "CUSTOS_LOG_LEVEL": "WARNING",
            "TENANT": tenant.id,
            "REQUEST": request_id,
        }
        env.pop("REDIS_URL", None)
        worker = subprocess.Popen(
            [sys.executable, "-c", KILLED_WORKER], env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            assert worker.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(worker.stdout.readline), 30)
            assert line.strip() == "erasing"
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            if worker.stdout is not None:
                worker.stdout.close()
        # Notes, merges and consents were erased inside the killed transaction: all back.
        stuck = await _request(runtime, tenant.id, request_id)
        assert stuck.status == "processing"
        notes = await client.get(
            f"/api/v1/customers/{seeded.customer_id}/notes", headers=bearer(tenant.admin_key)
        )
        assert len(notes.json()) == 2
        assert await erasure.run(runtime, tenant.id, request_id) == 1
        assert await find_everywhere(runtime, seeded.person.needles) == {}
