"""Events reach webhook endpoints: signed, filtered, retried, recorded, and endpoints that
keep failing are disabled. The receiver is a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from custos.kit.time import utcnow
from custos.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from custos.runtime import Runtime
from custos.webhook import delivery
from tests.factories import Factory, TenantHandle, bearer
from tests.receiver import Answer, Receiver

RunJobs = Callable[[], Awaitable[None]]


async def make_webhook(
    client: httpx.AsyncClient, tenant: TenantHandle, url: str, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/webhooks", json={"url": url, **fields}, headers=bearer(tenant.admin_key)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def make_customer(client: httpx.AsyncClient, tenant: TenantHandle, **fields: Any) -> str:
    response = await client.post(
        "/api/v1/customers",
        json={"full_name": "Ada Lovelace", **fields},
        headers=bearer(tenant.admin_key),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def failing_webhook(
    client: httpx.AsyncClient,
    tenant: TenantHandle,
    receiver: Receiver,
    run_jobs: RunJobs,
    path: str,
) -> dict[str, Any]:
    """An endpoint whose receiver answers 500, and one customer change sent to it once."""
    hook = await make_webhook(client, tenant, receiver.url + path)
    receiver.script = lambda _r: Answer(500)
    await make_customer(client, tenant)
    await run_jobs()
    return hook


async def deliveries(runtime: Runtime, tenant_id: str, endpoint_id: str) -> list[WebhookDelivery]:
    async with runtime.db.transaction(tenant_id=tenant_id, write=False) as session:
        rows = await session.execute(
            sa.select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
        )
        return list(rows.scalars())


async def attempts(runtime: Runtime, tenant_id: str, delivery_id: str) -> list[WebhookAttempt]:
    async with runtime.db.transaction(tenant_id=tenant_id, write=False) as session:
        rows = await session.execute(
            sa.select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery_id)
            .order_by(WebhookAttempt.number)
        )
        return list(rows.scalars())


async def make_due(runtime: Runtime, tenant_id: str, delivery_id: str) -> None:
    """As if the retry's time had come."""
    async with runtime.db.transaction(tenant_id=tenant_id) as session:
        await session.execute(
            sa.update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


async def send_due(runtime: Runtime, tenant_id: str, delivery_id: str) -> None:
    await make_due(runtime, tenant_id, delivery_id)
    await delivery.deliver(runtime, tenant_id, [delivery_id], "test:retry")


class TestDelivery:
    async def test_a_customer_change_is_delivered_signed_with_the_event_id(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
        runtime: Runtime,
    ) -> None:
        tenant = await factory.tenant()
        hook = await make_webhook(
            client, tenant, f"{receiver.url}/hooks", event_types=["customer.*"]
        )
        customer_id = await make_customer(client, tenant, email="ada@example.com")
        await run_jobs()

        [message] = receiver.for_path("/hooks")
        body = message.json()
        assert body["type"] == "customer.created"
        assert body["data"]["customer"]["id"] == customer_id
        assert body["tenant_id"] == tenant.id
        assert message.webhook_id == body["id"]
        assert message.webhook_id.startswith("evt_")
        assert message.headers["webhook-signature"].startswith("v1,")
        assert message.headers["content-type"] == "application/json"
        [row] = await deliveries(runtime, tenant.id, hook["id"])
        assert (row.status, row.attempts, row.last_status_code) == ("succeeded", 1, 204)

    async def test_only_matching_types_and_filters_are_delivered(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
    ) -> None:
        tenant = await factory.tenant()
        await make_webhook(
            client, tenant, f"{receiver.url}/created", event_types=["customer.created"]
        )
        await make_webhook(
            client,
            tenant,
            f"{receiver.url}/vip",
            event_types=["customer.*"],
            filter={"customer.tags": {"contains": "vip"}},
        )
        await make_webhook(client, tenant, f"{receiver.url}/keys", event_types=["api_key.*"])
        plain = await make_customer(client, tenant)
        vip = await make_customer(client, tenant, tags=["vip"])
        await client.patch(
            f"/api/v1/customers/{plain}", json={"company": "X"}, headers=bearer(tenant.admin_key)
        )
        await run_jobs()

        def types(path: str) -> list[tuple[str, str]]:
            return sorted(
                (r.json()["type"], r.json()["data"]["customer"]["id"])
                for r in receiver.for_path(path)
            )

        assert types("/created") == sorted([("customer.created", plain), ("customer.created", vip)])
        assert types("/vip") == [("customer.created", vip)]
        assert receiver.for_path("/keys") == []

    async def test_an_endpoint_gets_no_events_from_before_it_existed(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
    ) -> None:
        tenant = await factory.tenant()
        await make_customer(client, tenant)
        await make_webhook(client, tenant, f"{receiver.url}/late")
        await run_jobs()
        assert receiver.for_path("/late") == []

    async def test_another_tenants_events_never_reach_the_endpoint(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
    ) -> None:
        mine, theirs = await factory.tenant(), await factory.tenant()
        await make_webhook(client, mine, f"{receiver.url}/mine")
        await make_customer(client, theirs)
        await make_customer(client, mine)
        await run_jobs()
        assert {r.json()["tenant_id"] for r in receiver.for_path("/mine")} == {mine.id}

    async def test_custom_headers_are_sent_and_never_shown(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
    ) -> None:
        tenant = await factory.tenant()
        hook = await make_webhook(
            client, tenant, f"{receiver.url}/h", headers={"Authorization": "Bearer receiver-token"}
        )
        assert hook["header_names"] == ["Authorization"]
        assert "receiver-token" not in str(hook)
        read = await client.get(f"/api/v1/webhooks/{hook['id']}", headers=bearer(tenant.admin_key))
        assert "receiver-token" not in read.text
        await make_customer(client, tenant)
        await run_jobs()
        [message] = receiver.for_path("/h")
        assert message.headers["authorization"] == "Bearer receiver-token"


class TestLargeFanOut:
    async def test_a_batch_of_many_records_is_delivered_through_chunked_jobs(
        self,
        client: httpx.AsyncClient,
        raw_client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
        runtime: Runtime,
    ) -> None:
        tenant = await factory.tenant()
        hook = await make_webhook(
            client, tenant, f"{receiver.url}/bulk", event_types=["customer.*"]
        )
        size = delivery.INLINE_LIMIT + 50
        # A batch writes an audit row per record: raw_client, not the one-row check.
        made = await raw_client.post(
            "/api/v1/customers/batch",
            json={"items": [{"full_name": f"Bulk {i}"} for i in range(size)]},
            headers=bearer(tenant.admin_key),
        )
        assert made.status_code == 200
        await run_jobs()
        assert len({r.webhook_id for r in receiver.for_path("/bulk")}) == size
        rows = await deliveries(runtime, tenant.id, hook["id"])
        assert {r.status for r in rows} == {"succeeded"}
        assert len(rows) == size


class TestRetries:
    async def test_a_failure_is_retried_on_the_schedule_until_it_succeeds(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
        runtime: Runtime,
    ) -> None:
        tenant = await factory.tenant()
        hook = await make_webhook(client, tenant, f"{receiver.url}/flaky")
        answers = iter([Answer(500, body=b"oops"), Answer(502)])
        receiver.script = lambda _r: next(answers, Answer(200))
        before = utcnow()
        await make_customer(client, tenant)
        await run_jobs()
        [row] = await deliveries(runtime, tenant.id, hook["id"])
        assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 500)
        assert row.next_attempt_at is not None
        # The first retry waits 5 s, give or take the 20 % jitter.
        wait = (row.next_attempt_at - before).total_seconds()
        assert 3.9 <= wait <= 6.5, wait

        await send_due(runtime, tenant.id, row.id)
        [row] = await deliveries(runtime, tenant.id, hook["id"])
        assert (row.status, row.attempts) == ("pending", 2)
        assert row.next_attempt_at is not None
        assert 240 <= (row.next_attempt_at - utcnow()).total_seconds() <= 361  # 5 min +/- 20 %

        await send_due(runtime, tenant.id, row.id)
        [row] = await deliveries(runtime, tenant.id, hook["id"])
        assert (row.status, row.attempts, row.last_status_code) == ("succeeded", 3, 200)
        log = await attempts(runtime, tenant.id, row.id)
        assert [(a.number, a.status_code, a.outcome) for a in log] == [
            (1, 500, "failed"),
            (2, 502, "failed"),
            (3, 200, "succeeded"),
        ]
        assert log[0].response_body == "oops"
        ids = {r.webhook_id for r in receiver.for_path("/flaky")}
        assert len(ids) == 1, "every attempt carries the same webhook-id"

    async def test_retry_after_is_honoured_on_429_and_503(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
        runtime: Runtime,
    ) -> None:
        tenant = await factory.tenant()
        hook = await make_webhook(client, tenant, f"{receiver.url}/busy")
        receiver.script = lambda _r: Answer(429, headers={"Retry-After": "120"})
        await make_customer(client, tenant)
        await run_jobs()
        [row] = await deliveries(runtime, tenant.id, hook["id"])
        assert row.next_attempt_at is not None
        assert 115 <= (row.next_attempt_at - utcnow()).total_seconds() <= 121

        receiver.script = lambda _r: Answer(503, headers={"Retry-After": "7"})
        await send_due(runtime, tenant.id, row.id)
        [row] = await deliveries(runtime, tenant.id, hook["id"])
        assert row.next_attempt_at is not None
        assert 5 <= (row.next_attempt_at - utcnow()).total_seconds() <= 7.5

    async def test_the_schedule_ends_in_failure(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
        runtime: Runtime,
    ) -> None:
        tenant = await factory.tenant()
        hook = await failing_webhook(client, tenant, receiver, run_jobs, "/down")
        [row] = await deliveries(runtime, tenant.id, hook["id"])
        for _ in runtime.settings.webhook_retry_schedule:
            await send_due(runtime, tenant.id, row.id)
        [row] = await deliveries(runtime, tenant.id, hook["id"])
        attempts_allowed = len(runtime.settings.webhook_retry_schedule) + 1
        assert (row.status, row.attempts, row.next_attempt_at) == ("failed", attempts_allowed, None)
        assert len(receiver.for_path("/down")) == attempts_allowed

    async def test_redirects_are_not_followed(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
        runtime: Runtime,
    ) -> None:
        tenant = await factory.tenant()
        hook = await make_webhook(client, tenant, f"{receiver.url}/moved")
        receiver.script = lambda r: (
            Answer(307, headers={"Location": f"{receiver.url}/elsewhere"})
            if r.path == "/moved"
            else Answer(204)
        )
        await make_customer(client, tenant)
        await run_jobs()
        [row] = await deliveries(runtime, tenant.id, hook["id"])
        assert (row.status, row.last_status_code) == ("pending", 307)
        assert row.last_error == "redirect not followed"
        assert receiver.for_path("/elsewhere") == []

    async def test_a_slow_receiver_times_out_and_is_retried(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
        runtime: Runtime,
    ) -> None:
        tenant = await factory.tenant()
        hook = await make_webhook(client, tenant, f"{receiver.url}/slow")
        receiver.script = lambda _r: Answer(200, delay=runtime.settings.webhook_timeout_seconds + 2)
        await make_customer(client, tenant)
        await run_jobs()
        [row] = await deliveries(runtime, tenant.id, hook["id"])
        [attempt] = await attempts(runtime, tenant.id, row.id)
        assert (row.status, attempt.status_code, attempt.error) == ("pending", None, "timed out")
        assert attempt.duration_ms < (runtime.settings.webhook_timeout_seconds + 1) * 1000

    async def test_response_bodies_are_stored_cut_short(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
        runtime: Runtime,
    ) -> None:
        tenant = await factory.tenant()
        hook = await make_webhook(client, tenant, f"{receiver.url}/chatty")
        receiver.script = lambda _r: Answer(500, body=b"x" * 100_000)
        await make_customer(client, tenant)
        await run_jobs()
        [row] = await deliveries(runtime, tenant.id, hook["id"])
        [attempt] = await attempts(runtime, tenant.id, row.id)
        assert attempt.response_body is not None
        assert len(attempt.response_body) == runtime.settings.webhook_response_max_bytes


class TestDisabling:
    async def test_410_gone_disables_the_endpoint_and_says_so(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
        runtime: Runtime,
    ) -> None:
        tenant = await factory.tenant()
        gone = await make_webhook(
            client, tenant, f"{receiver.url}/gone", event_types=["customer.*"]
        )
        watcher = await make_webhook(
            client, tenant, f"{receiver.url}/watch", event_types=["webhook.endpoint_disabled"]
        )
        receiver.script = lambda r: Answer(410) if r.path == "/gone" else Answer(204)
        await make_customer(client, tenant)
        await run_jobs()
        await run_jobs()  # the webhook.endpoint_disabled event's own dispatch

        read = await client.get(f"/api/v1/webhooks/{gone['id']}", headers=bearer(tenant.admin_key))
        assert (read.json()["enabled"], read.json()["disabled_reason"]) == (False, "gone")
        [row] = await deliveries(runtime, tenant.id, gone["id"])
        assert (row.status, row.next_attempt_at) == ("failed", None)
        [notice] = receiver.for_path("/watch")
        assert notice.json()["data"] == {
            "endpoint_id": gone["id"],
            "url": gone["url"],
            "reason": "gone",
            "failing_since": None,
        }
        assert watcher["id"] != gone["id"]
        audit = await client.get(
            "/api/v1/audit", params={"target_id": gone["id"]}, headers=bearer(tenant.admin_key)
        )
        assert "webhook.disabled" in [e["action"] for e in audit.json()["items"]]

    async def test_failing_for_five_days_disables_the_endpoint(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
        runtime: Runtime,
    ) -> None:
        tenant = await factory.tenant()
        hook = await failing_webhook(client, tenant, receiver, run_jobs, "/dead")
        read = await client.get(f"/api/v1/webhooks/{hook['id']}", headers=bearer(tenant.admin_key))
        assert read.json()["enabled"] is True
        assert read.json()["failing_since"] is not None
        # Four days and a bit of failures later, still on; past five days, off.
        async with runtime.db.transaction(tenant_id=tenant.id) as session:
            await session.execute(
                sa.update(WebhookEndpoint)
                .where(WebhookEndpoint.id == hook["id"])
                .values(failing_since=utcnow() - timedelta(days=4, hours=23))
            )
        [row] = await deliveries(runtime, tenant.id, hook["id"])
        await send_due(runtime, tenant.id, row.id)
        read = await client.get(f"/api/v1/webhooks/{hook['id']}", headers=bearer(tenant.admin_key))
        assert read.json()["enabled"] is True
        async with runtime.db.transaction(tenant_id=tenant.id) as session:
            await session.execute(
                sa.update(WebhookEndpoint)
                .where(WebhookEndpoint.id == hook["id"])
                .values(failing_since=utcnow() - timedelta(days=5, minutes=1))
            )
        await send_due(runtime, tenant.id, row.id)
        read = await client.get(f"/api/v1/webhooks/{hook['id']}", headers=bearer(tenant.admin_key))
        assert (read.json()["enabled"], read.json()["disabled_reason"]) == (False, "failing")
        async with runtime.db.transaction(tenant_id=tenant.id, write=False) as session:
            disabled_events = (
                (
                    await session.execute(
                        sa.select(Event.payload).where(
                            Event.tenant_id == tenant.id, Event.type == "webhook.endpoint_disabled"
                        )
                    )
                )
                .scalars()
                .all()
            )
        assert [p["reason"] for p in disabled_events] == ["failing"]

    async def test_a_success_clears_the_failing_streak(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
        runtime: Runtime,
    ) -> None:
        tenant = await factory.tenant()
        hook = await failing_webhook(client, tenant, receiver, run_jobs, "/recovers")
        receiver.script = lambda _r: Answer(200)
        [row] = await deliveries(runtime, tenant.id, hook["id"])
        await send_due(runtime, tenant.id, row.id)
        read = await client.get(f"/api/v1/webhooks/{hook['id']}", headers=bearer(tenant.admin_key))
        assert read.json()["failing_since"] is None

    async def test_a_disabled_endpoint_gets_nothing_until_enabled_again(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
    ) -> None:
        tenant = await factory.tenant()
        hook = await make_webhook(client, tenant, f"{receiver.url}/paused", enabled=False)
        await make_customer(client, tenant)
        await run_jobs()
        assert receiver.for_path("/paused") == []
        enabled = await client.patch(
            f"/api/v1/webhooks/{hook['id']}",
            json={"enabled": True},
            headers=bearer(tenant.admin_key),
        )
        assert enabled.json()["enabled"] is True
        await make_customer(client, tenant)
        await run_jobs()
        assert len(receiver.for_path("/paused")) == 1


class TestHealth:
    async def test_due_deliveries_show_in_the_detailed_health(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
        runtime: Runtime,
    ) -> None:
        tenant = await factory.tenant()
        hook = await failing_webhook(client, tenant, receiver, run_jobs, "/backlog")
        [row] = await deliveries(runtime, tenant.id, hook["id"])
        await make_due(runtime, tenant.id, row.id)
        body = (await client.get("/health/detailed")).json()
        backlog = body["components"]["webhook_deliveries"]
        assert backlog["status"] == "ok"
        assert backlog["due"] >= 1
        assert backlog["oldest_due_age_seconds"] >= 1
