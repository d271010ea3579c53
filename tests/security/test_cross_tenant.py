"""Tenant B, holding every scope, uses tenant A's real ids on every tenant-owned route: each
answer is 404 (never 403, which would confirm the id exists), A's data is unchanged, and B's
lists never show A's rows."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from custos.auth.scopes import Role
from custos.bulk.runner import run as run_operation
from custos.runtime import Runtime
from tests.factories import Factory, bearer
from tests.receiver import Receiver
from tests.security.routes import ROUTE_POLICY, concrete

# Bodies that would succeed on one's own resources, so a 404 is about the id, not the body.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PATCH", "/api/v1/users/{user_id}"): {"full_name": "Taken Over"},
    ("PATCH", "/api/v1/api-keys/{key_id}"): {"name": "taken-over"},
    ("POST", "/api/v1/api-keys/{key_id}/rotate"): {"grace_period_seconds": 0},
    ("PUT", "/api/v1/customers/{customer_id}"): {"full_name": "Taken Over"},
    ("PATCH", "/api/v1/customers/{customer_id}"): {"full_name": "Taken Over"},
    ("POST", "/api/v1/customers/{customer_id}/notes"): {"body": "planted"},
    ("PATCH", "/api/v1/feedback/{feedback_id}"): {"status": "triaged"},
    ("PATCH", "/api/v1/internal/customers/{customer_id}/statistics"): {
        "increment_id": "forged-1",
        "complaints": 5,
    },
    ("POST", "/api/v1/privacy/requests/{request_id}/transitions"): {"status": "cancelled"},
    ("PATCH", "/api/v1/webhooks/{webhook_id}"): {"url": "http://127.0.0.1:9/taken-over"},
    ("POST", "/api/v1/webhooks/{webhook_id}/rotate-secret"): {"grace_period_seconds": 0},
    ("POST", "/api/v1/webhooks/{webhook_id}/replay"): {"since": "2020-01-01T00:00:00Z"},
}
# Self-service routes are tried by the intruder's own customer-role user, below.
TENANT_ROUTES = sorted(
    (method, path)
    for (method, path), policy in ROUTE_POLICY.items()
    if path.startswith("/api/v1/") and "{" in path and not policy.startswith("self:")
)
SELF_ROUTES = sorted(
    (method, path)
    for (method, path), policy in ROUTE_POLICY.items()
    if path.startswith("/api/v1/") and "{" in path and policy.startswith("self:")
)
# Reads that name their customer in the query (tried with foreign ids below) or scan a text.
NEEDS_QUERY = {
    "/api/v1/privacy/consent",
    "/api/v1/privacy/consent/history",
    "/api/v1/privacy/pii-scan",
}
LISTS = sorted(
    path
    for (method, path), policy in ROUTE_POLICY.items()
    # Self-service routes show the caller's own record, not a list; admins cannot call them.
    if method == "GET"
    and path.startswith("/api/v1/")
    and "{" not in path
    and not policy.startswith("self:")
    and path not in NEEDS_QUERY
)


@pytest.fixture
async def tenants(
    client: httpx.AsyncClient,
    factory: Factory,
    runtime: Runtime,
    receiver: Receiver,
    run_jobs: Callable[[], Awaitable[None]],
) -> dict[str, Any]:
    owner, intruder = await factory.tenant(), await factory.tenant()
    hook_response = await client.post(
        "/api/v1/webhooks",
        json={"url": f"{receiver.url}/owned", "event_types": ["customer.*"]},
        headers=bearer(owner.admin_key),
    )
    user = await factory.user(owner.id, owner.slug, Role.viewer)
    key_response = await client.post(
        "/api/v1/api-keys",
        json={"name": "owned", "scopes": ["users:read"]},
        headers=bearer(owner.admin_key),
    )
    customer_response = await client.post(
        "/api/v1/customers",
        json={"full_name": "Owned Person", "email": "owned@example.com", "external_id": "crm-7"},
        headers=bearer(owner.admin_key),
    )
    customer_id = customer_response.json()["id"]
    note_response = await client.post(
        f"/api/v1/customers/{customer_id}/notes",
        json={"body": "prefers email"},
        headers=bearer(owner.admin_key),
    )
    pair = [
        (
            await client.post(
                "/api/v1/customers", json={"full_name": name}, headers=bearer(owner.admin_key)
            )
        ).json()["id"]
        for name in ("Twin One", "Twin Two")
    ]
    merge_response = await client.post(
        "/api/v1/customers/merge",
        json={"primary": pair[0], "secondary": pair[1]},
        headers=bearer(owner.admin_key),
    )
    feedback_response = await client.post(
        "/api/v1/feedback",
        json={"customer_id": customer_id, "content": "Owned words", "feedback_type": "complaint"},
        headers=bearer(owner.admin_key),
    )
    export_response = await client.post(
        "/api/v1/bulk/export",
        json={"resource": "customers", "format": "csv"},
        headers=bearer(owner.admin_key),
    )
    await run_operation(runtime, export_response.json()["id"])
    request_response = await client.post(
        "/api/v1/privacy/requests",
        json={"type": "access", "customer_id": customer_id},
        headers=bearer(owner.admin_key),
    )
    await client.post(
        "/api/v1/privacy/consent",
        json={"customer_id": customer_id, "consent_type": "marketing"},
        headers=bearer(owner.admin_key),
    )
    await run_jobs()
    webhook_id = hook_response.json()["id"]
    deliveries = await client.get(
        f"/api/v1/webhooks/{webhook_id}/deliveries", headers=bearer(owner.admin_key)
    )
    delivery = deliveries.json()["items"][0]
    return {
        "owner": owner,
        "intruder": intruder,
        "ids": {
            "user_id": user.id,
            "key_id": key_response.json()["id"],
            "customer_id": customer_id,
            "note_id": note_response.json()["id"],
            "external_id": "crm-7",
            "merge_id": merge_response.json()["merge"]["id"],
            "feedback_id": feedback_response.json()["id"],
            "operation_id": export_response.json()["id"],
            "request_id": request_response.json()["id"],
            # The owner's cache entry for that customer, as DELETE /cache/{key} names it.
            "key": f"customer:{customer_id}",
            "webhook_id": webhook_id,
            "delivery_id": delivery["id"],
            "event_id": delivery["event_id"],
        },
    }


async def _snapshot(client: httpx.AsyncClient, key: str, ids: dict[str, str]) -> dict[str, Any]:
    headers = bearer(key)
    return {
        "user": (await client.get(f"/api/v1/users/{ids['user_id']}", headers=headers)).json(),
        "key": (await client.get(f"/api/v1/api-keys/{ids['key_id']}", headers=headers)).json(),
        "audit": (await client.get("/api/v1/audit/verify", headers=headers)).json(),
        "customer": (
            await client.get(f"/api/v1/customers/{ids['customer_id']}", headers=headers)
        ).json(),
        "notes": (
            await client.get(f"/api/v1/customers/{ids['customer_id']}/notes", headers=headers)
        ).json(),
        "merge": (
            await client.get(f"/api/v1/customers/merges/{ids['merge_id']}", headers=headers)
        ).json(),
        "feedback": (
            await client.get(f"/api/v1/feedback/{ids['feedback_id']}", headers=headers)
        ).json(),
        "operation": (
            await client.get(f"/api/v1/bulk/operations/{ids['operation_id']}", headers=headers)
        ).json(),
        "request": (
            await client.get(f"/api/v1/privacy/requests/{ids['request_id']}", headers=headers)
        ).json(),
        "consent": (
            await client.get(
                "/api/v1/privacy/consent/history",
                params={"customer_id": ids["customer_id"]},
                headers=headers,
            )
        ).json(),
        "webhook": (
            await client.get(f"/api/v1/webhooks/{ids['webhook_id']}", headers=headers)
        ).json(),
        "delivery": (
            await client.get(
                f"/api/v1/webhooks/{ids['webhook_id']}/deliveries/{ids['delivery_id']}",
                headers=headers,
            )
        ).json(),
        "event": (await client.get(f"/api/v1/events/{ids['event_id']}", headers=headers)).json(),
    }


def test_every_path_parameter_has_a_real_id_to_try() -> None:
    known = {
        "user_id",
        "key_id",
        "customer_id",
        "note_id",
        "external_id",
        "merge_id",
        "feedback_id",
        "operation_id",
        "request_id",
        "key",
        "webhook_id",
        "delivery_id",
        "event_id",
    }
    params = {p for _, path in TENANT_ROUTES for p in re.findall(r"\{(\w+)\}", path)}
    assert params <= known, f"give the cross-tenant suite a real id for {params - known}"
    assert TENANT_ROUTES


async def test_foreign_ids_are_404_everywhere_and_change_nothing(
    client: httpx.AsyncClient, tenants: dict[str, Any]
) -> None:
    owner, intruder, ids = tenants["owner"], tenants["intruder"], tenants["ids"]
    before = await _snapshot(client, owner.admin_key, ids)
    answers = {}
    for method, path in TENANT_ROUTES:
        response = await client.request(
            method,
            concrete(path, ids),
            json=BODIES.get((method, path)),
            headers=bearer(intruder.admin_key),
        )
        answers[(method, path)] = response.status_code
    assert {route: status for route, status in answers.items() if status != 404} == {}
    assert await _snapshot(client, owner.admin_key, ids) == before
    # The same calls on the owner's side work, so the 404s above were about tenancy.
    own = await client.get(f"/api/v1/users/{ids['user_id']}", headers=bearer(owner.admin_key))
    assert own.status_code == 200


async def test_lists_never_show_another_tenants_rows(
    client: httpx.AsyncClient, tenants: dict[str, Any]
) -> None:
    owner, intruder, ids = tenants["owner"], tenants["intruder"], tenants["ids"]
    owner_ids = {owner.id, owner.admin.id, *ids.values()}
    assert LISTS
    for path in LISTS:
        response = await client.get(path, headers=bearer(intruder.admin_key))
        assert response.status_code == 200, path
        assert not any(i in response.text for i in owner_ids), path


async def test_self_service_routes_never_reach_another_tenants_ids(
    client: httpx.AsyncClient, tenants: dict[str, Any]
) -> None:
    owner, intruder, ids = tenants["owner"], tenants["intruder"], tenants["ids"]
    own = await client.post(
        "/api/v1/customers",
        json={"full_name": "Intruding Self"},
        headers=bearer(intruder.admin_key),
    )
    await client.post(
        "/api/v1/users",
        json={
            "email": "intruding-self@example.com",
            "password": "a-long-customer-password",
            "role": "customer",
            "customer_id": own.json()["id"],
        },
        headers=bearer(intruder.admin_key),
    )
    token = (
        await client.post(
            "/api/v1/auth/login",
            json={"email": "intruding-self@example.com", "password": "a-long-customer-password"},
        )
    ).json()["access_token"]
    before = await _snapshot(client, owner.admin_key, ids)
    assert SELF_ROUTES
    for method, path in SELF_ROUTES:
        response = await client.request(method, concrete(path, ids), headers=bearer(token))
        assert response.status_code == 404, (method, path, response.status_code)
    assert await _snapshot(client, owner.admin_key, ids) == before


async def test_customer_ids_in_queries_and_bodies_are_404_too(
    client: httpx.AsyncClient, tenants: dict[str, Any]
) -> None:
    """The consent routes and request creation name the customer in the query or body."""
    owner, intruder, ids = tenants["owner"], tenants["intruder"], tenants["ids"]
    headers = bearer(intruder.admin_key)
    customer = {"customer_id": ids["customer_id"]}
    calls = [
        ("GET", "/api/v1/privacy/consent", customer, None),
        ("GET", "/api/v1/privacy/consent/history", customer, None),
        ("DELETE", "/api/v1/privacy/consent", {**customer, "consent_type": "marketing"}, None),
        ("POST", "/api/v1/privacy/consent", None, {**customer, "consent_type": "marketing"}),
        ("POST", "/api/v1/privacy/requests", None, {**customer, "type": "access"}),
    ]
    before = await _snapshot(client, owner.admin_key, ids)
    for method, path, params, body in calls:
        response = await client.request(method, path, params=params, json=body, headers=headers)
        assert response.status_code == 404, (method, path, response.status_code)
    listed = await client.get("/api/v1/privacy/requests", params=customer, headers=headers)
    assert listed.json()["items"] == []
    assert await _snapshot(client, owner.admin_key, ids) == before


async def test_filters_cannot_reach_across(
    client: httpx.AsyncClient, tenants: dict[str, Any]
) -> None:
    owner, intruder, ids = tenants["owner"], tenants["intruder"], tenants["ids"]
    for params in ({"target_id": ids["user_id"]}, {"actor_id": owner.admin.id}):
        response = await client.get(
            "/api/v1/audit", params=params, headers=bearer(intruder.admin_key)
        )
        assert response.json()["items"] == []
