"""Tenant B, holding every scope, uses tenant A's real ids on every tenant-owned route: each
answer is 404 (never 403, which would confirm the id exists), A's data is unchanged, and B's
lists never show A's rows."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from custos.auth.scopes import Role
from tests.factories import Factory, bearer
from tests.security.routes import ROUTE_POLICY, concrete

# Bodies that would succeed on one's own resources, so a 404 is about the id, not the body.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PATCH", "/api/v1/users/{user_id}"): {"full_name": "Taken Over"},
    ("PATCH", "/api/v1/api-keys/{key_id}"): {"name": "taken-over"},
    ("POST", "/api/v1/api-keys/{key_id}/rotate"): {"grace_period_seconds": 0},
    ("PUT", "/api/v1/customers/{customer_id}"): {"full_name": "Taken Over"},
    ("PATCH", "/api/v1/customers/{customer_id}"): {"full_name": "Taken Over"},
    ("POST", "/api/v1/customers/{customer_id}/notes"): {"body": "planted"},
    ("PATCH", "/api/v1/internal/customers/{customer_id}/statistics"): {
        "increment_id": "forged-1",
        "complaints": 5,
    },
}
TENANT_ROUTES = sorted(
    (method, path) for method, path in ROUTE_POLICY if path.startswith("/api/v1/") and "{" in path
)
LISTS = sorted(
    path
    for (method, path), policy in ROUTE_POLICY.items()
    # Self-service routes show the caller's own record, not a list; admins cannot call them.
    if method == "GET"
    and path.startswith("/api/v1/")
    and "{" not in path
    and not policy.startswith("self:")
)


@pytest.fixture
async def tenants(client: httpx.AsyncClient, factory: Factory) -> dict[str, Any]:
    owner, intruder = await factory.tenant(), await factory.tenant()
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
            # The owner's cache entry for that customer, as DELETE /cache/{key} names it.
            "key": f"customer:{customer_id}",
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
    }


def test_every_path_parameter_has_a_real_id_to_try() -> None:
    known = {"user_id", "key_id", "customer_id", "note_id", "external_id", "merge_id", "key"}
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


async def test_filters_cannot_reach_across(
    client: httpx.AsyncClient, tenants: dict[str, Any]
) -> None:
    owner, intruder, ids = tenants["owner"], tenants["intruder"], tenants["ids"]
    for params in ({"target_id": ids["user_id"]}, {"actor_id": owner.admin.id}):
        response = await client.get(
            "/api/v1/audit", params=params, headers=bearer(intruder.admin_key)
        )
        assert response.json()["items"] == []
