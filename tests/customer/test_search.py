from __future__ import annotations

import httpx
import pytest

from tests.factories import Factory, TenantHandle, bearer

BASE = "/api/v1/customers"


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
    @pytest.mark.parametrize(
        ("q", "expected"),
        [
            ("jan", {"Jane Doe"}),
            ("DOE", {"Jane Doe"}),
            ("jane.doe@example.com", {"Jane Doe"}),
            ("@acme", {"John Smith"}),
            ("acme corp", {"John Smith"}),
            ("ångström", {"Zoë Ångström"}),
            ("example.com", {"Jane Doe", "Percent 100% Sure"}),
        ],
    )
    async def test_by_partial_name_email_and_company(
        self, client: httpx.AsyncClient, tenant: TenantHandle, q: str, expected: set[str]
    ) -> None:
        assert await _names(client, tenant, q) == expected

    @pytest.mark.parametrize(
        "q",
        [
            "(415) 555-2671",
            "415-555-2671",
            "+1 415 555 2671",
            "4155552671",
            "14155552671",
            "555-2671",
        ],
    )
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
