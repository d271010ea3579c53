"""GET /customers on PostgreSQL answers newest-first pages in one round trip
(`lists.newest_first_in_one_round_trip`), with its filters written as SQL; it must answer
exactly as the ORM path (`lists.with_orm`, which serves SQLite and sorted pages) does, for
every filter and combination, page after page."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from alembic import command

from custos.auth.principal import Principal, PrincipalKind
from custos.customer import lists
from custos.customer.schemas import CustomerListQuery, CustomerStatus
from custos.exceptions import InvalidInput
from custos.migrate import alembic_config, upgrade
from custos.runtime import Runtime
from tests.conftest import api_client, own_database, runtime_with
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
    {"tag": "vip", "limit": 1},
    {"tag": "vip", "include_deleted": True},
    {"tag": "beta", "status": "active"},
    {"tag": "gamma"},
    {"tag": "Gamma"},
    {"tag": "gone"},
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
    # Tags changed and a tagged record hard-deleted: the tags index (PostgreSQL) follows.
    changed = await client.patch(
        f"{BASE}/{ids[2]}", json={"tags": ["beta", "gamma"]}, headers=bearer(tenant.admin_key)
    )
    assert changed.status_code == 200, changed.text
    gone = await client.post(
        BASE, json={"full_name": "Gone", "tags": ["gone", "vip"]}, headers=bearer(tenant.admin_key)
    )
    removed = await client.delete(
        f"{BASE}/{gone.json()['id']}",
        params={"hard_delete": "true"},
        headers=bearer(tenant.admin_key),
    )
    assert removed.status_code == 204

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

    async def tagged(**params: Any) -> list[str]:
        pages = await _all_pages(runtime, lists.newest_first_in_one_round_trip, actor, params)
        return [c["id"] for page in pages for c in page["items"]]

    assert await tagged(tag="gamma") == [ids[2]]
    assert await tagged(tag="beta") == [ids[2], ids[0]]
    assert await tagged(tag="vip", limit=1) == [ids[0]]
    assert await tagged(tag="vip", include_deleted=True, limit=1) == [ids[1], ids[0]]
    assert await tagged(tag="gone") == []


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


async def test_the_tags_index_is_filled_from_the_records_already_there(
    uses_postgres: bool,
) -> None:
    """Migration e8b4d2f6a1c3 builds the index from every existing record: records written
    below it (with no trigger to index them) are listed by tag once it runs."""
    if not uses_postgres:
        pytest.skip("the tags index exists on PostgreSQL only")
    async with own_database("custos-tags") as own:
        async with runtime_with(own.database_url) as runtime, api_client(own, runtime) as client:
            tenant = await Factory(runtime).tenant()
            first = await client.post(
                BASE, json={"full_name": "First", "tags": ["x"]}, headers=bearer(tenant.admin_key)
            )
        await asyncio.to_thread(command.downgrade, alembic_config(own), "d5a7c3e9f1b8")
        async with runtime_with(own.database_url) as runtime, api_client(own, runtime) as client:
            below = await client.post(
                BASE, json={"full_name": "Below", "tags": ["x"]}, headers=bearer(tenant.admin_key)
            )
            assert below.status_code == 201, below.text
        await asyncio.to_thread(upgrade, own)
        async with runtime_with(own.database_url) as runtime:
            query = CustomerListQuery.model_validate({"tag": "x"})
            page = orjson.loads(
                await lists.newest_first_in_one_round_trip(
                    runtime.db, _principal(tenant.id), query, None
                )
            )
    assert [c["id"] for c in page["items"]] == [below.json()["id"], first.json()["id"]]
