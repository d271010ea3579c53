from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.factories import Factory, TenantHandle, bearer

BASE = "/api/v1/customers"


@pytest.fixture
async def tenant(factory: Factory) -> TenantHandle:
    return await factory.tenant()


def _headers(tenant: TenantHandle, key: str) -> dict[str, str]:
    return {**bearer(tenant.admin_key), "Idempotency-Key": key}


async def _count(client: httpx.AsyncClient, tenant: TenantHandle) -> int:
    listed = await client.get(BASE, params={"limit": 1000}, headers=bearer(tenant.admin_key))
    return len(listed.json()["items"])


class TestIdempotencyKey:
    async def test_a_replay_gets_the_same_response_and_creates_nothing(
        self, client: httpx.AsyncClient, raw_client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        body = {"full_name": "Once Only", "email": "once@example.com"}
        first = await client.post(BASE, json=body, headers=_headers(tenant, "k-1"))
        assert first.status_code == 201
        # raw_client: a replay is not a state change, so it writes no audit row.
        replay = await raw_client.post(BASE, json=body, headers=_headers(tenant, "k-1"))
        assert replay.status_code == 201
        assert replay.json() == first.json()
        assert replay.headers["etag"] == first.headers["etag"]
        assert replay.headers["location"] == first.headers["location"]
        assert await _count(client, tenant) == 1

    async def test_the_same_key_with_another_body_is_422(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        await client.post(BASE, json={"full_name": "A"}, headers=_headers(tenant, "k-2"))
        other = await client.post(BASE, json={"full_name": "B"}, headers=_headers(tenant, "k-2"))
        assert other.status_code == 422
        assert other.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]
        assert await _count(client, tenant) == 1

    async def test_keys_belong_to_their_caller(
        self, client: httpx.AsyncClient, factory: Factory, tenant: TenantHandle
    ) -> None:
        other_key = await factory.key(tenant.id, ["customers:write", "customers:read"])
        body = {"full_name": "Shared Key"}
        mine = await client.post(BASE, json=body, headers=_headers(tenant, "k-3"))
        theirs = await client.post(
            BASE, json=body, headers={**bearer(other_key), "Idempotency-Key": "k-3"}
        )
        assert theirs.status_code == 201
        assert theirs.json()["id"] != mine.json()["id"]

    async def test_a_failed_request_does_not_use_up_the_key(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        await client.post(
            BASE,
            json={"full_name": "Taken", "email": "dup@example.com"},
            headers=bearer(tenant.admin_key),
        )
        body = {"full_name": "Second", "email": "dup@example.com"}
        conflict = await client.post(BASE, json=body, headers=_headers(tenant, "k-4"))
        assert conflict.status_code == 409
        body["email"] = "fixed@example.com"
        fixed = await client.post(BASE, json=body, headers=_headers(tenant, "k-4"))
        assert fixed.status_code == 201

    async def test_concurrent_requests_with_one_key_create_one_record(
        self, raw_client: httpx.AsyncClient, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        body = {"full_name": "Raced", "email": "race@example.com"}
        responses = await asyncio.gather(
            *(raw_client.post(BASE, json=body, headers=_headers(tenant, "k-5")) for _ in range(5))
        )
        statuses = sorted(r.status_code for r in responses)
        assert set(statuses) <= {201, 409}
        assert 201 in statuses
        ids = {r.json()["id"] for r in responses if r.status_code == 201}
        assert len(ids) == 1
        assert await _count(client, tenant) == 1

    async def test_an_overlong_key_is_422(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        response = await client.post(
            BASE, json={"full_name": "X"}, headers=_headers(tenant, "k" * 256)
        )
        assert response.status_code == 422
