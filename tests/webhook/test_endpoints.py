"""Managing webhook endpoints: the secret shown once, validation, ETags, limits, rotation,
and the delivery log, retry, replay and test routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from custos.app import create_app
from custos.config import Settings
from custos.kit.time import utcnow
from custos.runtime import Runtime
from tests.conftest import BASE_URL, make_settings
from tests.factories import Factory, TenantHandle, bearer
from tests.receiver import Answer, Receiver
from tests.ssrf_forms import ELSEWHERE, loopback_forms
from tests.webhook.test_delivery import make_customer, make_webhook

RunJobs = Callable[[], Awaitable[None]]
BASE = "/api/v1/webhooks"


@pytest.fixture(scope="module")
async def strict(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    """An app as deployed: no allow-listed hosts, and at most two endpoints per tenant."""
    own = make_settings(
        settings.database_url, webhook_allowed_hosts=[], webhook_max_endpoints_per_tenant=2
    )
    runtime = Runtime.build(own)
    await runtime.start()
    app = create_app(own, runtime)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL
    ) as client:
        yield client, runtime
    await runtime.stop()


class TestCreate:
    async def test_the_secret_is_shown_once(
        self, client: httpx.AsyncClient, factory: Factory, receiver: Receiver
    ) -> None:
        tenant = await factory.tenant()
        made = await make_webhook(client, tenant, f"{receiver.url}/x", description="CRM sync")
        assert made["secret"].startswith("whsec_")
        assert made["event_types"] == ["*"]
        read = await client.get(f"{BASE}/{made['id']}", headers=bearer(tenant.admin_key))
        assert read.status_code == 200
        assert "secret" not in read.json()
        assert made["secret"] not in read.text
        listed = await client.get(BASE, headers=bearer(tenant.admin_key))
        assert [w["id"] for w in listed.json()["items"]] == [made["id"]]
        assert made["secret"] not in listed.text

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("event_types", ["customer.exploded"]),
            ("event_types", ["Customer.*"]),
            ("event_types", []),
            ("filter", {"customer.status": {"like": "a%"}}),
            ("filter", {"customer..status": "x"}),
            ("filter", {"customer.tags": {"in": "vip"}}),
            ("headers", {"Content-Type": "text/plain"}),
            ("headers", {"webhook-id": "forged"}),
            ("headers", {"X-Bad": "line\r\nbreak"}),
            ("headers", {f"X-H{i}": "v" for i in range(21)}),
            ("rate_limit_per_second", 0),
            ("url", "ftp://hooks.example.com/"),
            ("url", "https://" + "a" * 2050 + ".example.com/"),
        ],
    )
    async def test_invalid_fields_are_refused_naming_the_field(
        self, client: httpx.AsyncClient, factory: Factory, field: str, value: Any
    ) -> None:
        tenant = await factory.tenant()
        body = {"url": "http://127.0.0.1:9/hook", field: value}
        response = await client.post(BASE, json=body, headers=bearer(tenant.admin_key))
        assert response.status_code == 422, response.text
        assert field in str(response.json()["errors"][0]["loc"])
        listed = await client.get(BASE, headers=bearer(tenant.admin_key))
        assert listed.json()["items"] == []

    @pytest.mark.parametrize(
        "url",
        [*loopback_forms(8080).values(), *ELSEWHERE.values()],
        ids=[*loopback_forms(8080), *ELSEWHERE],
    )
    async def test_each_ssrf_form_is_refused_at_creation(
        self, strict: tuple[httpx.AsyncClient, Runtime], factory: Factory, url: str
    ) -> None:
        strict_client, _ = strict
        tenant = await factory.tenant()
        response = await strict_client.post(
            BASE, json={"url": url}, headers=bearer(tenant.admin_key)
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"] == ["body", "url"]

    async def test_a_public_url_is_accepted_where_private_ones_are_not(
        self, strict: tuple[httpx.AsyncClient, Runtime], factory: Factory
    ) -> None:
        strict_client, _ = strict
        tenant = await factory.tenant()
        response = await strict_client.post(
            BASE, json={"url": "https://93.184.215.14/hook"}, headers=bearer(tenant.admin_key)
        )
        assert response.status_code == 201, response.text

    async def test_a_tenant_has_a_limited_number_of_endpoints(
        self, strict: tuple[httpx.AsyncClient, Runtime], factory: Factory
    ) -> None:
        strict_client, _ = strict
        tenant = await factory.tenant()
        answers = [
            (
                await strict_client.post(
                    BASE,
                    json={"url": f"https://93.184.215.14/hook/{i}"},
                    headers=bearer(tenant.admin_key),
                )
            ).status_code
            for i in range(3)
        ]
        assert answers == [201, 201, 409]

    async def test_the_same_idempotency_key_creates_one_endpoint(
        self, raw_client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        headers = {**bearer(tenant.admin_key), "Idempotency-Key": "create-hook-1"}
        body = {"url": "http://127.0.0.1:9/once"}
        first = await raw_client.post(BASE, json=body, headers=headers)
        second = await raw_client.post(BASE, json=body, headers=headers)
        assert (first.status_code, second.status_code) == (201, 201)
        assert first.json()["id"] == second.json()["id"]
        assert first.json()["secret"].startswith("whsec_")
        assert second.json()["secret"] is None, "a replayed answer never repeats the secret"
        listed = await raw_client.get(BASE, headers=bearer(tenant.admin_key))
        assert len(listed.json()["items"]) == 1


class TestChange:
    async def test_an_update_needs_the_current_etag(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        made = await make_webhook(client, tenant, "http://127.0.0.1:9/x")
        path = f"{BASE}/{made['id']}"
        read = await client.get(path, headers=bearer(tenant.admin_key))
        etag = read.headers["ETag"]
        changed = await client.patch(
            path,
            json={"description": "now described", "event_types": ["customer.*"]},
            headers={**bearer(tenant.admin_key), "If-Match": etag},
        )
        assert changed.status_code == 200
        assert changed.json()["event_types"] == ["customer.*"]
        assert changed.headers["ETag"] != etag
        stale = await client.patch(
            path,
            json={"description": "lost update"},
            headers={**bearer(tenant.admin_key), "If-Match": etag},
        )
        assert stale.status_code == 412
        assert (await client.get(path, headers=bearer(tenant.admin_key))).json()[
            "description"
        ] == "now described"

    async def test_null_clears_optional_fields_but_not_required_ones(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        made = await make_webhook(
            client, tenant, "http://127.0.0.1:9/x", rate_limit_per_second=5, filter={"a": 1}
        )
        path = f"{BASE}/{made['id']}"
        cleared = await client.patch(
            path,
            json={"rate_limit_per_second": None, "filter": None},
            headers=bearer(tenant.admin_key),
        )
        assert (cleared.json()["rate_limit_per_second"], cleared.json()["filter"]) == (None, None)
        refused = await client.patch(path, json={"url": None}, headers=bearer(tenant.admin_key))
        assert refused.status_code == 422

    async def test_disabling_by_hand_records_the_reason(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        made = await make_webhook(client, tenant, "http://127.0.0.1:9/x")
        off = await client.patch(
            f"{BASE}/{made['id']}", json={"enabled": False}, headers=bearer(tenant.admin_key)
        )
        assert (off.json()["enabled"], off.json()["disabled_reason"]) == (False, "manual")

    async def test_deleting_removes_the_endpoint(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        made = await make_webhook(client, tenant, "http://127.0.0.1:9/x")
        path = f"{BASE}/{made['id']}"
        assert (await client.delete(path, headers=bearer(tenant.admin_key))).status_code == 204
        assert (await client.get(path, headers=bearer(tenant.admin_key))).status_code == 404
        assert (await client.delete(path, headers=bearer(tenant.admin_key))).status_code == 404

    async def test_a_rotation_grace_beyond_seven_days_is_refused(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        made = await make_webhook(client, tenant, "http://127.0.0.1:9/x")
        response = await client.post(
            f"{BASE}/{made['id']}/rotate-secret",
            json={"grace_period_seconds": 8 * 86_400},
            headers=bearer(tenant.admin_key),
        )
        assert response.status_code == 422

    async def test_a_viewer_can_read_but_not_change(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        made = await make_webhook(client, tenant, "http://127.0.0.1:9/x")
        viewer = await factory.key(tenant.id, ["webhooks:read"])
        assert (await client.get(BASE, headers=bearer(viewer))).status_code == 200
        refused = await client.patch(
            f"{BASE}/{made['id']}", json={"enabled": False}, headers=bearer(viewer)
        )
        assert refused.status_code == 403


async def _hook_with_one_delivery(
    client: httpx.AsyncClient, receiver: Receiver, run_jobs: RunJobs, tenant: TenantHandle
) -> tuple[dict[str, Any], dict[str, Any]]:
    hook = await make_webhook(client, tenant, f"{receiver.url}/log")
    await make_customer(client, tenant)
    await run_jobs()
    page = await client.get(f"{BASE}/{hook['id']}/deliveries", headers=bearer(tenant.admin_key))
    [item] = page.json()["items"]
    return hook, item


class TestDeliveryLog:
    async def test_each_attempt_is_logged_with_status_duration_and_answer(
        self, client: httpx.AsyncClient, factory: Factory, receiver: Receiver, run_jobs: RunJobs
    ) -> None:
        tenant = await factory.tenant()
        receiver.script = lambda _r: Answer(500, body=b'{"error": "db down"}')
        hook, item = await _hook_with_one_delivery(client, receiver, run_jobs, tenant)
        assert (item["status"], item["attempts"], item["trigger"]) == ("pending", 1, "event")
        one = await client.get(
            f"{BASE}/{hook['id']}/deliveries/{item['id']}", headers=bearer(tenant.admin_key)
        )
        [attempt] = one.json()["attempt_log"]
        assert attempt["status_code"] == 500
        assert attempt["response_body"] == '{"error": "db down"}'
        assert attempt["duration_ms"] > 0
        assert attempt["outcome"] == "failed"
        filtered = await client.get(
            f"{BASE}/{hook['id']}/deliveries",
            params={"status": "succeeded"},
            headers=bearer(tenant.admin_key),
        )
        assert filtered.json()["items"] == []

    async def test_retry_sends_again_now(
        self, client: httpx.AsyncClient, factory: Factory, receiver: Receiver, run_jobs: RunJobs
    ) -> None:
        tenant = await factory.tenant()
        receiver.script = lambda _r: Answer(500)
        hook, item = await _hook_with_one_delivery(client, receiver, run_jobs, tenant)
        receiver.script = lambda _r: Answer(200)
        retried = await client.post(
            f"{BASE}/{hook['id']}/deliveries/{item['id']}/retry", headers=bearer(tenant.admin_key)
        )
        assert retried.status_code == 202
        await run_jobs()
        one = await client.get(
            f"{BASE}/{hook['id']}/deliveries/{item['id']}", headers=bearer(tenant.admin_key)
        )
        assert one.json()["status"] == "succeeded"
        assert [a["status_code"] for a in one.json()["attempt_log"]] == [500, 200]

    async def test_a_retry_of_an_unknown_delivery_is_404(
        self, client: httpx.AsyncClient, factory: Factory, receiver: Receiver
    ) -> None:
        tenant = await factory.tenant()
        hook = await make_webhook(client, tenant, f"{receiver.url}/x")
        response = await client.post(
            f"{BASE}/{hook['id']}/deliveries/dlv_00000000000000000000000000/retry",
            headers=bearer(tenant.admin_key),
        )
        assert response.status_code == 404

    async def test_replay_sends_a_range_again_with_the_same_webhook_ids(
        self, client: httpx.AsyncClient, factory: Factory, receiver: Receiver, run_jobs: RunJobs
    ) -> None:
        tenant = await factory.tenant()
        hook = await make_webhook(
            client, tenant, f"{receiver.url}/replayed", event_types=["customer.*"]
        )
        for _ in range(3):
            await make_customer(client, tenant)
        await run_jobs()
        first = sorted(r.webhook_id for r in receiver.for_path("/replayed"))
        assert len(first) == 3
        receiver.reset()
        replay = await client.post(
            f"{BASE}/{hook['id']}/replay",
            json={"since": (utcnow() - timedelta(minutes=5)).isoformat()},
            headers=bearer(tenant.admin_key),
        )
        assert replay.status_code == 202, replay.text
        assert replay.json()["events"] == 3
        await run_jobs()
        assert sorted(r.webhook_id for r in receiver.for_path("/replayed")) == first
        page = await client.get(f"{BASE}/{hook['id']}/deliveries", headers=bearer(tenant.admin_key))
        replays = [d for d in page.json()["items"] if d["trigger"] == "replay"]
        assert {d["replay_id"] for d in replays} == {replay.json()["replay_id"]}

    async def test_replay_refuses_an_empty_range(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        hook = await make_webhook(client, tenant, "http://127.0.0.1:9/x")
        now = utcnow()
        response = await client.post(
            f"{BASE}/{hook['id']}/replay",
            json={"since": now.isoformat(), "until": (now - timedelta(hours=1)).isoformat()},
            headers=bearer(tenant.admin_key),
        )
        assert response.status_code == 422

    async def test_a_test_message_goes_to_that_endpoint_only(
        self, client: httpx.AsyncClient, factory: Factory, receiver: Receiver, run_jobs: RunJobs
    ) -> None:
        tenant = await factory.tenant()
        target = await make_webhook(client, tenant, f"{receiver.url}/target")
        await make_webhook(client, tenant, f"{receiver.url}/bystander")
        sent = await client.post(
            f"{BASE}/{target['id']}/test",
            json={"event_type": "customer.created"},
            headers=bearer(tenant.admin_key),
        )
        assert sent.status_code == 202, sent.text
        assert sent.json()["trigger"] == "test"
        await run_jobs()
        [message] = receiver.for_path("/target")
        assert message.json()["type"] == "customer.created"
        assert message.json()["test"] is True
        assert receiver.for_path("/bystander") == []
        default = await client.post(f"{BASE}/{target['id']}/test", headers=bearer(tenant.admin_key))
        assert default.json()["event_type"] == "webhook.test"

    async def test_test_and_replay_refuse_a_disabled_endpoint(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        hook = await make_webhook(client, tenant, "http://127.0.0.1:9/x", enabled=False)
        test = await client.post(f"{BASE}/{hook['id']}/test", headers=bearer(tenant.admin_key))
        replay = await client.post(
            f"{BASE}/{hook['id']}/replay",
            json={"since": utcnow().isoformat()},
            headers=bearer(tenant.admin_key),
        )
        assert (test.status_code, replay.status_code) == (409, 409)


class TestRateLimit:
    async def test_messages_over_the_rate_are_held_back_not_dropped(
        self,
        client: httpx.AsyncClient,
        raw_client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
    ) -> None:
        tenant = await factory.tenant()
        hook = await make_webhook(
            client, tenant, f"{receiver.url}/limited", rate_limit_per_second=2
        )
        # A batch writes an audit row per record: raw_client, not the one-row check.
        batch = await raw_client.post(
            "/api/v1/customers/batch",
            json={"items": [{"full_name": f"Person {i}"} for i in range(5)]},
            headers=bearer(tenant.admin_key),
        )
        assert batch.status_code == 200
        await run_jobs()
        assert len(receiver.for_path("/limited")) == 2
        page = await client.get(f"{BASE}/{hook['id']}/deliveries", headers=bearer(tenant.admin_key))
        held = [d for d in page.json()["items"] if d["attempts"] == 0]
        assert len(held) == 3
        assert all(d["status"] == "pending" and d["next_attempt_at"] for d in held)
