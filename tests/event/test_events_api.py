"""GET /events (filters, cursors, order), GET /events/{id} and POST /events/trigger."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.factories import Factory, TenantHandle, bearer
from tests.receiver import Receiver

RunJobs = Callable[[], Awaitable[None]]
BASE = "/api/v1/events"


async def _three_customers(client: httpx.AsyncClient, tenant: TenantHandle) -> list[str]:
    ids = []
    for name in ("One", "Two", "Three"):
        made = await client.post(
            "/api/v1/customers", json={"full_name": name}, headers=bearer(tenant.admin_key)
        )
        ids.append(made.json()["id"])
    return ids


async def _all(
    client: httpx.AsyncClient, tenant: TenantHandle, **params: Any
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = await client.get(BASE, params=query, headers=bearer(tenant.admin_key))
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return items


class TestList:
    async def test_newest_first_by_default_and_oldest_first_on_request(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        await _three_customers(client, tenant)
        newest = await _all(client, tenant, limit=2)
        oldest = await _all(client, tenant, limit=2, order="asc")
        seqs = [e["seq"] for e in newest]
        assert seqs == sorted(seqs, reverse=True)
        assert [e["id"] for e in oldest] == [e["id"] for e in reversed(newest)]
        # The tenant's API key was issued first, then three customers.
        assert [e["type"] for e in oldest] == ["api_key.created"] + ["customer.created"] * 3

    async def test_filters_by_type_pattern_subject_and_seq(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        ids = await _three_customers(client, tenant)
        assert len(await _all(client, tenant, type="customer.*")) == 3
        assert len(await _all(client, tenant, type=["api_key.created", "customer.created"])) == 4
        [one] = await _all(client, tenant, subject_type="customer", subject_id=ids[1])
        assert one["subject"] == {"type": "customer", "id": ids[1]}
        after = await _all(client, tenant, after_seq=one["seq"], order="asc")
        assert [e["subject"]["id"] for e in after] == [ids[2]]
        assert await _all(client, tenant, test="true") == []

    async def test_time_range(self, client: httpx.AsyncClient, factory: Factory) -> None:
        tenant = await factory.tenant()
        await _three_customers(client, tenant)
        everything = await _all(client, tenant, order="asc")
        since = everything[1]["timestamp"]
        until = everything[3]["timestamp"]
        ranged = await _all(client, tenant, since=since, until=until, order="asc")
        assert [e["id"] for e in ranged] == [e["id"] for e in everything[1:3]]

    @pytest.mark.parametrize(
        "params",
        [{"type": "Customer.*"}, {"type": "customer.*.x"}, {"cursor": "garbage"}, {"order": "up"}],
    )
    async def test_bad_filters_are_refused(
        self, client: httpx.AsyncClient, factory: Factory, params: dict[str, str]
    ) -> None:
        tenant = await factory.tenant()
        response = await client.get(BASE, params=params, headers=bearer(tenant.admin_key))
        assert response.status_code == 422

    async def test_one_event_and_an_unknown_one(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        [latest] = (
            await client.get(BASE, params={"limit": 1}, headers=bearer(tenant.admin_key))
        ).json()["items"]
        one = await client.get(f"{BASE}/{latest['id']}", headers=bearer(tenant.admin_key))
        assert one.json() == latest
        missing = await client.get(
            f"{BASE}/evt_00000000000000000000000000", headers=bearer(tenant.admin_key)
        )
        assert missing.status_code == 404

    async def test_reading_needs_events_read(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        key = await factory.key(tenant.id, ["customers:read"])
        assert (await client.get(BASE, headers=bearer(key))).status_code == 403


class TestTrigger:
    async def test_a_test_event_is_written_and_delivered_like_any_other(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
    ) -> None:
        tenant = await factory.tenant()
        await client.post(
            "/api/v1/webhooks",
            json={"url": f"{receiver.url}/tests", "event_types": ["event.test"]},
            headers=bearer(tenant.admin_key),
        )
        made = await client.post(f"{BASE}/trigger", json={}, headers=bearer(tenant.admin_key))
        assert made.status_code == 201, made.text
        event = made.json()
        assert (event["type"], event["test"]) == ("event.test", True)
        assert event["seq"] > 0
        assert made.headers["Location"] == f"{BASE}/{event['id']}"
        await run_jobs()
        [message] = receiver.for_path("/tests")
        assert message.json() == event

    async def test_any_type_with_its_example_or_a_payload_of_its_schema(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        example = await client.post(
            f"{BASE}/trigger", json={"type": "customer.created"}, headers=bearer(tenant.admin_key)
        )
        assert example.status_code == 201
        assert example.json()["data"]["customer"]["email"] == "jane.doe@example.com"
        own = {**example.json()["data"]}
        own["customer"] = {**own["customer"], "full_name": "Grace Hopper"}
        given = await client.post(
            f"{BASE}/trigger",
            json={"type": "customer.created", "payload": own},
            headers=bearer(tenant.admin_key),
        )
        assert given.status_code == 201, given.text
        assert given.json()["data"]["customer"]["full_name"] == "Grace Hopper"
        assert given.json()["data"]["customer"]["metadata"] == own["customer"]["metadata"]

    @pytest.mark.parametrize(
        "body",
        [
            {"type": "customer.exploded"},
            {"type": "customer.created", "payload": {"customer": {"id": 7}}},
            {"type": "event.test", "payload": {"message": "x", "extra": 1}},
            {"type": "event.test", "payload": {"message": "x" * 501}},
        ],
    )
    async def test_an_unknown_type_or_a_payload_off_schema_is_refused(
        self, client: httpx.AsyncClient, factory: Factory, body: dict[str, Any]
    ) -> None:
        tenant = await factory.tenant()
        before = await _all(client, tenant)
        response = await client.post(f"{BASE}/trigger", json=body, headers=bearer(tenant.admin_key))
        assert response.status_code == 422, response.text
        assert await _all(client, tenant) == before

    async def test_triggering_needs_events_write(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        key = await factory.key(tenant.id, ["events:read"])
        response = await client.post(f"{BASE}/trigger", json={}, headers=bearer(key))
        assert response.status_code == 403
