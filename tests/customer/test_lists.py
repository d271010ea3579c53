"""GET /customers on PostgreSQL answers newest-first pages in one round trip
(`lists.newest_first_in_one_round_trip`), with its filters written as SQL; it must answer
exactly as the ORM path (`lists.with_orm`, which serves SQLite and sorted pages) does, for
every filter and combination, page after page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from custos.auth.principal import Principal, PrincipalKind
from custos.customer import lists
from custos.customer.schemas import CustomerListQuery, CustomerStatus
from custos.exceptions import InvalidInput
from custos.runtime import Runtime
from tests.factories import Factory, bearer

BASE = "/api/v1/customers"

PEOPLE: list[dict[str, Any]] = [
    {"full_name": "Ada Lovelace", "email": "ada@example.com", "company": "Analytical Engines",
     "tags": ["vip", "beta"], "phone": "+44 20 7946 0958"},
    {"full_name": "Grace Hopper", "email": "grace@navy.example", "company": "ANALYTICAL engines",
     "customer_type": "business", "tags": ["vip"]},
    {"full_name": "Alan Turing", "email": "alan@example.com", "status": "inactive",
     "tags": ["beta"], "phone": "(415) 555-2671"},
    {"full_name": "Percent 100% Sure_Thing", "email": "p_1@example.com", "tags": ["a/b"]},
    {"full_name": "Zoë Ångström", "company": "Acme", "customer_type": "business"},
    {"full_name": "Ed", "email": "ed@ed.example", "status": "inactive", "tags": []},
]  # fmt: skip

# A hard-deleted shape is not needed: deleted rows are soft-deleted ones (include_deleted).
QUERIES: list[dict[str, Any]] = [
    {},
    {"limit": 2},
    {"status": "active"},
    {"status": "inactive", "customer_type": "individual"},
    {"customer_type": "business"},
    {"tag": "vip"},
    {"tag": "a/b"},
    {"tag": "missing"},
    {"company": "analytical ENGINES"},
    {"include_deleted": True},
    {"include_deleted": True, "limit": 1},
    {"q": "ada"},
    {"q": "example.com", "limit": 2},
    {"q": "ed"},
    {"q": "e d"},
    {"q": "100%"},
    {"q": "_"},
    {"q": "p_1"},
    {"q": "(415) 555-2671"},
    {"q": "ångström"},
    {"q": "lovelace vip"},
    {"q": "example", "status": "active", "tag": "beta"},
]


def _principal(tenant_id: str) -> Principal:
    return Principal(
        kind=PrincipalKind.api_key,
        id="key_x",
        tenant_id=tenant_id,
        scopes=frozenset({"customers:read"}),
        tenant_settings={},
    )


async def _all_pages(
    runtime: Runtime, path: Any, actor: Principal, params: dict[str, Any]
) -> list[Any]:
    pages, cursor = [], None
    while True:
        query = CustomerListQuery.model_validate({**params, "cursor": cursor})
        status = CustomerStatus(params["status"]) if "status" in params else None
        page = orjson.loads(await path(runtime.db, actor, query, status))
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


async def test_both_paths_answer_every_filter_alike(
    client: httpx.AsyncClient, factory: Factory, runtime: Runtime, uses_postgres: bool
) -> None:
    if not uses_postgres:
        pytest.skip("the one-round-trip list exists on PostgreSQL only")
    tenant, other = await factory.tenant(), await factory.tenant()
    ids = []
    for person in PEOPLE:
        made = await client.post(BASE, json=person, headers=bearer(tenant.admin_key))
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
    # Theirs must never show; a soft-deleted one only with include_deleted.
    await client.post(BASE, json=PEOPLE[0], headers=bearer(other.admin_key))
    deleted = await client.delete(f"{BASE}/{ids[1]}", headers=bearer(tenant.admin_key))
    assert deleted.status_code == 204

    actor = _principal(tenant.id)
    now = datetime.now(UTC)
    dated = [
        {"created_after": (now - timedelta(hours=1)).isoformat()},
        {"created_before": (now - timedelta(hours=1)).isoformat()},
        {"updated_since": (now + timedelta(hours=1)).isoformat()},
    ]
    seen_any = False
    for params in QUERIES + dated:
        fast = await _all_pages(runtime, lists.newest_first_in_one_round_trip, actor, params)
        orm = await _all_pages(runtime, lists.with_orm, actor, params)
        assert fast == orm, params
        found = [c["id"] for page in fast for c in page["items"]]
        assert len(found) == len(set(found)), params
        assert set(found) <= set(ids), params  # never another tenant's
        seen_any = seen_any or bool(found)
    assert seen_any


async def test_a_malformed_cursor_is_refused_on_both_paths(
    factory: Factory, runtime: Runtime, uses_postgres: bool
) -> None:
    if not uses_postgres:
        pytest.skip("the one-round-trip list exists on PostgreSQL only")
    tenant = await factory.tenant()
    actor = _principal(tenant.id)
    for cursor in ("not-base64!", "eyJpZCI6IDF9", "W10"):  # garbage, {"id": 1}, []
        query = CustomerListQuery(cursor=cursor)
        for path in (lists.newest_first_in_one_round_trip, lists.with_orm):
            with pytest.raises(InvalidInput, match="cursor is not valid"):
                await path(runtime.db, actor, query, None)
