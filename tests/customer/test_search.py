from __future__ import annotations

import asyncio

import httpx
import pytest
import sqlalchemy as sa
from alembic import command

from custos.config import Settings
from custos.customer.tasks import refresh_search_statistics
from custos.db import create_engine
from custos.migrate import alembic_config
from custos.runtime import Runtime
from tests.conftest import own_database
from tests.factories import Factory, TenantHandle, bearer

BASE = "/api/v1/customers"

PARTIAL = [
    ("jan", {"Jane Doe"}),
    ("DOE", {"Jane Doe"}),
    ("jane.doe@example.com", {"Jane Doe"}),
    ("@acme", {"John Smith"}),
    ("acme corp", {"John Smith"}),
    ("ångström", {"Zoë Ångström"}),
    ("example.com", {"Jane Doe", "Percent 100% Sure"}),
]

PHONES = [
    "(415) 555-2671",
    "415-555-2671",
    "+1 415 555 2671",
    "4155552671",
    "14155552671",
    "555-2671",
]

WORDS = [
    ("ane do", {"Jane Doe"}),  # substrings, any word length
    ("doe jane", {"Jane Doe"}),  # every word, in any order
    ("SMI", {"John Smith"}),
    ("acme-mail.com", {"John Smith"}),
    ("jsmith@acme", {"John Smith"}),
    ("2671", {"Jane Doe"}),  # phone digits
    ("jane nobody", set()),
]

SHORT = [
    ("j", {"Jane Doe", "John Smith"}),
    ("zo", {"Zoë Ångström"}),
    ("ö", {"Zoë Ångström"}),
    ("@", {"Jane Doe", "John Smith", "Percent 100% Sure"}),
    ("q", set()),
    ("j d", {"Jane Doe"}),
]

SYNTAX = [
    '"',
    '""',
    '"jane',
    "jane*",
    "*",
    "jane AND doe",
    "jane OR doe",
    "NOT jane",
    "NEAR(jane doe)",
    "NEAR(",
    "-jane",
    "jane -doe",
    "^jane",
    "{full_name}: jane",
    "full_name:jane",
    "'",
    "o'brien",
    "\\",
    "100\\%",
    "__",
    "%%%",
    "a%b_c",
    "(",
    "))",
    "+",
    "jane;drop table customers",
]


@pytest.fixture
async def tenant(client: httpx.AsyncClient, factory: Factory) -> TenantHandle:
    tenant = await factory.tenant()
    for body in (
        {"full_name": "Jane Doe", "email": "jane.doe@example.com", "phone": "(415) 555-2671"},
        {"full_name": "John Smith", "email": "jsmith@acme-mail.com", "company": "Acme Corp"},
        {"full_name": "Zoë Ångström", "phone": "+44 20 7946 0958"},
        {"full_name": "Percent 100% Sure", "email": "p@example.com"},
    ):
        response = await client.post(BASE, json=body, headers=bearer(tenant.admin_key))
        assert response.status_code == 201
    return tenant


async def _names(client: httpx.AsyncClient, tenant: TenantHandle, q: str) -> set[str]:
    response = await client.get(BASE, params={"q": q}, headers=bearer(tenant.admin_key))
    assert response.status_code == 200
    return {c["full_name"] for c in response.json()["items"]}


class TestSearch:
    @pytest.mark.parametrize(("q", "expected"), PARTIAL)
    async def test_by_partial_name_email_and_company(
        self, client: httpx.AsyncClient, tenant: TenantHandle, q: str, expected: set[str]
    ) -> None:
        assert await _names(client, tenant, q) == expected

    @pytest.mark.parametrize("q", PHONES)
    async def test_by_phone_in_any_format(
        self, client: httpx.AsyncClient, tenant: TenantHandle, q: str
    ) -> None:
        assert await _names(client, tenant, q) == {"Jane Doe"}

    async def test_an_international_number_as_written_locally_or_not(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        for q in ("020 7946 0958", "+442079460958", "0044 20 7946 0958"):
            assert await _names(client, tenant, q) == {"Zoë Ångström"}, q

    async def test_wildcards_are_taken_literally_and_misses_are_empty(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        assert await _names(client, tenant, "100%") == {"Percent 100% Sure"}
        assert await _names(client, tenant, "%") == {"Percent 100% Sure"}
        assert await _names(client, tenant, "_") == set()
        assert await _names(client, tenant, "nobody-here") == set()

    async def test_search_follows_changes_and_stays_in_the_tenant(
        self, client: httpx.AsyncClient, tenant: TenantHandle, factory: Factory
    ) -> None:
        listed = await client.get(BASE, params={"q": "john"}, headers=bearer(tenant.admin_key))
        john = listed.json()["items"][0]["id"]
        await client.patch(
            f"{BASE}/{john}", json={"full_name": "Johanna Smith"}, headers=bearer(tenant.admin_key)
        )
        assert await _names(client, tenant, "johanna") == {"Johanna Smith"}
        other = await factory.tenant()
        response = await client.get(BASE, params={"q": "jane"}, headers=bearer(other.admin_key))
        assert response.json()["items"] == []


async def _search(client: httpx.AsyncClient, tenant: TenantHandle, **params: str) -> httpx.Response:
    return await client.get(BASE, params=params, headers=bearer(tenant.admin_key))


class TestSearchIndex:
    @pytest.mark.parametrize(("q", "expected"), WORDS)
    async def test_words_and_substrings(
        self, client: httpx.AsyncClient, tenant: TenantHandle, q: str, expected: set[str]
    ) -> None:
        assert await _names(client, tenant, q) == expected

    @pytest.mark.parametrize(("q", "expected"), SHORT)
    async def test_short_queries(
        self, client: httpx.AsyncClient, tenant: TenantHandle, q: str, expected: set[str]
    ) -> None:
        assert await _names(client, tenant, q) == expected

    @pytest.mark.parametrize("q", SYNTAX)
    async def test_query_syntax_is_taken_literally(
        self, client: httpx.AsyncClient, tenant: TenantHandle, q: str
    ) -> None:
        # None of these strings is in any search text (except where a word is, below): they
        # match nothing, and never fail.
        response = await _search(client, tenant, q=q)
        assert response.status_code == 200, response.text
        names = {c["full_name"] for c in response.json()["items"]}
        assert names == set(), q

    async def test_literal_special_characters_are_found(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        for name in ('Ann "Quote" O\'Hara', "NEAR(x) AND y*", "under_score -dash"):
            created = await client.post(
                BASE, json={"full_name": name}, headers=bearer(tenant.admin_key)
            )
            assert created.status_code == 201
        assert await _names(client, tenant, '"quote"') == {'Ann "Quote" O\'Hara'}
        assert await _names(client, tenant, "o'hara") == {'Ann "Quote" O\'Hara'}
        assert await _names(client, tenant, "near(x) and") == {"NEAR(x) AND y*"}
        assert await _names(client, tenant, "y*") == {"NEAR(x) AND y*"}
        assert await _names(client, tenant, "under_score") == {"under_score -dash"}
        assert await _names(client, tenant, "-dash") == {"under_score -dash"}
        assert await _names(client, tenant, "r_s") == {"under_score -dash"}

    async def test_another_tenants_customers_never_appear(
        self, client: httpx.AsyncClient, tenant: TenantHandle, factory: Factory
    ) -> None:
        other = await factory.tenant()
        created = await client.post(
            BASE,
            json={"full_name": "Jane Doe", "email": "jane.doe@example.com"},
            headers=bearer(other.admin_key),
        )
        assert created.status_code == 201
        for q in ("jane", "jane.doe@example.com", "ja", "doe jane"):
            ids = {c["id"] for c in (await _search(client, tenant, q=q)).json()["items"]}
            assert created.json()["id"] not in ids, q
            theirs = (await _search(client, other, q=q)).json()["items"]
            assert [c["id"] for c in theirs] == [created.json()["id"]], q

    async def test_soft_deleted_only_with_include_deleted(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        jane = (await _search(client, tenant, q="jane")).json()["items"][0]["id"]
        deleted = await client.delete(f"{BASE}/{jane}", headers=bearer(tenant.admin_key))
        assert deleted.status_code == 204
        for q in ("jane", "ja", "4155552671"):
            assert await _names(client, tenant, q) == set(), q
            shown = await _search(client, tenant, q=q, include_deleted="true")
            assert {c["full_name"] for c in shown.json()["items"]} == {"Jane Doe"}, q

    async def test_updates_and_hard_deletes_reach_the_index(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        headers = bearer(tenant.admin_key)
        jane = (await _search(client, tenant, q="jane")).json()["items"][0]["id"]
        changed = await client.patch(
            f"{BASE}/{jane}",
            json={"full_name": "Janet Roe", "email": "roe@elsewhere.org", "phone": None},
            headers=headers,
        )
        assert changed.status_code == 200
        assert await _names(client, tenant, "jane doe") == set()
        assert await _names(client, tenant, "jane.doe@example.com") == set()
        assert await _names(client, tenant, "415-555-2671") == set()
        assert await _names(client, tenant, "janet roe") == {"Janet Roe"}
        assert await _names(client, tenant, "elsewhere") == {"Janet Roe"}
        gone = await client.delete(
            f"{BASE}/{jane}", params={"hard_delete": "true"}, headers=headers
        )
        assert gone.status_code == 204
        assert (await _search(client, tenant, q="janet", include_deleted="true")).json()[
            "items"
        ] == []

    async def test_cursor_pages_and_other_filters_over_results(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        headers = bearer(tenant.admin_key)
        made: list[tuple[str, bool]] = []
        for i in range(7):
            response = await client.post(
                BASE,
                json={
                    "full_name": f"Pager {i}",
                    "email": f"pager{i}@paging.example",
                    "status": "inactive" if i % 2 else "active",
                },
                headers=headers,
            )
            assert response.status_code == 201
            made.append((response.json()["id"], i % 2 == 0))
        seen: list[str] = []
        cursor = None
        while True:
            params = {"q": "paging.example", "limit": "3"}
            if cursor:
                params["cursor"] = cursor
            page = (await _search(client, tenant, **params)).json()
            seen += [c["id"] for c in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == sorted((id_ for id_, _ in made), reverse=True)
        active = await _search(client, tenant, q="pager", status="active")
        expected = sorted((id_ for id_, is_active in made if is_active), reverse=True)
        assert [c["id"] for c in active.json()["items"]] == expected
        by_name = await _search(client, tenant, q="pager", sort="full_name", limit="2", skip="1")
        assert [c["full_name"] for c in by_name.json()["items"]] == ["Pager 1", "Pager 2"]


class TestSearchFunction:
    async def test_it_sees_only_the_transactions_tenant(
        self, tenant: TenantHandle, runtime: Runtime, factory: Factory
    ) -> None:
        if not runtime.settings.is_postgres:
            pytest.skip("customer_search_ids() exists on PostgreSQL only")
        other = await factory.tenant()
        query = sa.text("SELECT count(*) FROM customer_search_ids(:q)")
        async with runtime.db.transaction(tenant_id=tenant.id, write=False) as session:
            assert (await session.execute(query, {"q": "jane"})).scalar_one() == 1
            # Rows of the index itself: the runtime role sees its tenant's only.
            rows = sa.text("SELECT DISTINCT tenant_id FROM customer_search")
            assert (await session.execute(rows)).scalars().all() == [tenant.id]
        async with runtime.db.transaction(tenant_id=other.id, write=False) as session:
            assert (await session.execute(query, {"q": "jane"})).scalar_one() == 0
        async with runtime.db.engine.connect() as conn:
            # No tenant set: nothing at all.
            assert (await conn.execute(query, {"q": "jane"})).scalar_one() == 0


class TestSearchRowsFollowDeletes:
    """PostgreSQL's search rows go with their customer by a statement-level trigger
    (migration c3f8a1e6d2b4), as they once went by a foreign key's cascade."""

    async def test_a_hard_delete_and_a_many_row_delete_leave_no_search_row(
        self, client: httpx.AsyncClient, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        if not runtime.settings.is_postgres:
            pytest.skip("customer_search is a table of its own on PostgreSQL only")
        headers = bearer(tenant.admin_key)
        made = []
        for name in ("Gone Soon", "Also Gone", "Gone Too", "Stays Here"):
            created = await client.post(BASE, json={"full_name": name}, headers=headers)
            assert created.status_code == 201
            made.append(created.json()["id"])
        assert set(await _search_rows(runtime, tenant.id)) >= set(made)

        hard = await client.delete(
            f"{BASE}/{made[0]}", params={"hard_delete": "true"}, headers=headers
        )
        assert hard.status_code == 204
        assert made[0] not in await _search_rows(runtime, tenant.id)
        async with runtime.db.transaction(tenant_id=tenant.id) as session:
            await session.execute(
                sa.text("DELETE FROM customers WHERE id IN (:a, :b)"), {"a": made[1], "b": made[2]}
            )
        left = await _search_rows(runtime, tenant.id)
        assert not set(made[:3]) & set(left)
        assert made[3] in left
        assert await _names(client, tenant, "gone") == set()
        assert await _names(client, tenant, "stays") == {"Stays Here"}

    async def test_the_migration_down_brings_back_the_index_and_the_foreign_key(self) -> None:
        async with own_database("custos-write-path") as own:
            await asyncio.to_thread(command.downgrade, alembic_config(own), "b7e2d4f91c05")
            assert await _write_path_schema(own) == (True, own.is_postgres)
            await asyncio.to_thread(command.upgrade, alembic_config(own), "head")
            assert await _write_path_schema(own) == (False, False)


async def _write_path_schema(settings: Settings) -> tuple[bool, bool]:
    """Whether `customers` has its index on tenant_id alone, and `customer_search` its
    foreign key to `customers`."""
    engine = create_engine(settings, runtime_role=False)
    try:
        async with engine.connect() as conn:
            if settings.is_postgres:
                index = "SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_customers_tenant_id'"
                key = (
                    "SELECT count(*) FROM pg_constraint"
                    " WHERE conname = 'customer_search_customer_id_fkey'"
                )
                return bool(await conn.scalar(sa.text(index))), bool(
                    await conn.scalar(sa.text(key))
                )
            index = "SELECT count(*) FROM sqlite_master WHERE name = 'ix_customers_tenant_id'"
            return bool(await conn.scalar(sa.text(index))), False
    finally:
        await engine.dispose()


async def _search_rows(runtime: Runtime, tenant_id: str) -> list[str]:
    async with runtime.db.transaction(tenant_id=tenant_id, write=False) as session:
        rows = await session.execute(sa.text("SELECT customer_id FROM customer_search"))
        return list(rows.scalars())


class TestRarestTrigramLookUp:
    """PostgreSQL looks a word up by its whole text until trigram statistics exist, then by
    its three rarest trigrams (migration e1dd525e7799): both must find exactly the same."""

    async def test_finds_exactly_what_the_whole_word_look_up_finds(
        self, client: httpx.AsyncClient, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        if not runtime.settings.is_postgres:
            pytest.skip("trigram statistics exist on PostgreSQL only")
        for name in ("Customer4242 Example", "Customer424 Other", "Mr 2424 Digits"):
            created = await client.post(
                BASE, json={"full_name": name}, headers=bearer(tenant.admin_key)
            )
            assert created.status_code == 201
        expected = dict(PARTIAL + WORDS + SHORT) | {q: {"Jane Doe"} for q in PHONES}
        expected |= {q: set() for q in SYNTAX}
        expected |= {
            "customer4242": {"Customer4242 Example"},
            "customer424": {"Customer4242 Example", "Customer424 Other"},
            "2424": {"Mr 2424 Digits"},
            "4242 exam": {"Customer4242 Example"},
        }

        async def everything() -> dict[str, set[str]]:
            return {q: await _names(client, tenant, q) for q in expected}

        await _trigram_statistics(runtime, known=False)
        by_whole_words = await everything()
        await _trigram_statistics(runtime, known=True)
        by_rarest_trigrams = await everything()
        assert by_whole_words == expected
        assert by_rarest_trigrams == expected


async def _trigram_statistics(runtime: Runtime, *, known: bool) -> None:
    """Empties the statistics the search function reads, or refreshes them from a new
    ANALYZE (as their owner: the runtime role may not touch them)."""
    engine = create_engine(runtime.settings, runtime_role=False)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("DELETE FROM customer_search_trigram_stats"))
            if known:
                await conn.execute(sa.text("ANALYZE customer_search"))
        if known:
            assert await refresh_search_statistics(runtime) > 0
        async with engine.connect() as conn:
            count = await conn.scalar(sa.text("SELECT count(*) FROM customer_search_trigram_stats"))
    finally:
        await engine.dispose()
    assert bool(count) == known
