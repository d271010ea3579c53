from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.factories import Factory, TenantHandle, bearer

BASE = "/api/v1/customers"
INTERNAL = "/api/v1/internal/customers"
# Bookkeeping that every change moves on, undo included.
BOOKKEEPING = ("version", "updated_at")


@pytest.fixture
async def tenant(factory: Factory) -> TenantHandle:
    return await factory.tenant()


async def _create(client: httpx.AsyncClient, tenant: TenantHandle, **body: Any) -> dict[str, Any]:
    response = await client.post(BASE, json=body, headers=bearer(tenant.admin_key))
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


async def _state(client: httpx.AsyncClient, tenant: TenantHandle, customer_id: str) -> Any:
    headers = bearer(tenant.admin_key)
    record = (
        await client.get(
            f"{BASE}/{customer_id}", params={"include_deleted": "true"}, headers=headers
        )
    ).json()
    notes = (await client.get(f"{BASE}/{customer_id}/notes", headers=headers)).json()
    return (
        {k: v for k, v in record.items() if k not in BOOKKEEPING},
        sorted((n["id"], n["body"]) for n in notes),
    )


async def _merge(
    client: httpx.AsyncClient, tenant: TenantHandle, primary: str, secondary: str, **fields: str
) -> httpx.Response:
    return await client.post(
        f"{BASE}/merge",
        json={"primary": primary, "secondary": secondary, "fields": fields},
        headers=bearer(tenant.admin_key),
    )


async def _pair(client: httpx.AsyncClient, tenant: TenantHandle) -> tuple[str, str]:
    headers = bearer(tenant.admin_key)
    primary = await _create(
        client,
        tenant,
        full_name="Jane Doe",
        email="jane@example.com",
        tags=["vip"],
        metadata={"source": "web", "prefs": {"lang": "en"}},
        external_id="crm-1",
    )
    secondary = await _create(
        client,
        tenant,
        full_name="Jane M. Doe",
        email="jane.doe@work.example",
        phone="+44 20 7946 0958",
        company="Acme",
        tags=["newsletter", "vip"],
        metadata={"source": "shop", "prefs": {"tz": "UTC"}, "legacy_id": None},
        address={"city": "London", "country": "gb"},
    )
    for customer, body in ((primary, "called in May"), (secondary, "asked for a refund")):
        response = await client.post(
            f"{BASE}/{customer['id']}/notes", json={"body": body}, headers=headers
        )
        assert response.status_code == 201
    for customer, increment in ((primary, "p-1"), (secondary, "s-1")):
        response = await client.patch(
            f"{INTERNAL}/{customer['id']}/statistics",
            json={
                "increment_id": increment,
                "orders": 2,
                "order_value": "10.25",
                "currency": "EUR",
                "complaints": 1,
                "last_order_at": f"2026-10-0{1 if increment == 'p-1' else 9}T12:00:00Z",
            },
            headers=headers,
        )
        assert response.status_code == 200, response.text
    return primary["id"], secondary["id"]


class TestMerge:
    async def test_merge_then_undo_restores_both_records_exactly(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        primary, secondary = await _pair(client, tenant)
        before = {i: await _state(client, tenant, i) for i in (primary, secondary)}

        merged = await _merge(client, tenant, primary, secondary, email="secondary")
        assert merged.status_code == 201, merged.text
        merge_id = merged.json()["merge"]["id"]
        assert merged.headers["Location"] == f"/api/v1/customers/merges/{merge_id}"
        assert await _state(client, tenant, primary) != before[primary]

        undone = await client.post(
            f"{BASE}/merges/{merge_id}/undo", headers=bearer(tenant.admin_key)
        )
        assert undone.status_code == 200, undone.text
        after = {i: await _state(client, tenant, i) for i in (primary, secondary)}
        assert after == before
        assert undone.json()["merge"]["undone_at"] is not None
        # Both are live again, each findable by its own email.
        for customer_id, email in (
            (primary, "jane@example.com"),
            (secondary, "jane.doe@work.example"),
        ):
            found = await client.get(BASE, params={"q": email}, headers=bearer(tenant.admin_key))
            assert [c["id"] for c in found.json()["items"]] == [customer_id]

    async def test_merge_combines_the_records(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        primary, secondary = await _pair(client, tenant)
        response = await _merge(client, tenant, primary, secondary, email="secondary")
        assert response.status_code == 201, response.text
        customer = response.json()["customer"]
        assert customer["id"] == primary
        # Chosen: the secondary's email. Defaults: the primary's, gaps filled by the secondary.
        assert customer["email"] == "jane.doe@work.example"
        assert customer["full_name"] == "Jane Doe"
        assert customer["external_id"] == "crm-1"
        assert customer["phone_e164"] == "+442079460958"
        assert customer["company"] == "Acme"
        assert customer["address"]["city"] == "London"
        assert customer["tags"] == ["vip", "newsletter"]
        # A stored null is data: it survives the union.
        assert customer["metadata"] == {
            "source": "web",
            "prefs": {"lang": "en", "tz": "UTC"},
            "legacy_id": None,
        }
        assert customer["order_count"] == 4
        assert customer["total_order_value"] == "20.50"
        assert customer["complaint_count"] == 2
        assert customer["last_order_at"].startswith("2026-10-09")
        assert response.headers["ETag"] == f'"{primary}.{customer["version"]}"'

        headers = bearer(tenant.admin_key)
        notes = (await client.get(f"{BASE}/{primary}/notes", headers=headers)).json()
        assert sorted(n["body"] for n in notes) == ["asked for a refund", "called in May"]
        assert (await client.get(f"{BASE}/{secondary}", headers=headers)).status_code == 404
        listed = (await client.get(BASE, headers=headers)).json()["items"]
        assert [c["id"] for c in listed] == [primary]
        restore = await client.post(f"{BASE}/{secondary}/restore", headers=headers)
        assert restore.status_code == 409
        assert primary in restore.json()["detail"]
        # The freed email of the primary can be used by a new record.
        assert (await _create(client, tenant, full_name="New", email="jane@example.com"))["id"]

    async def test_metadata_choice_and_external_id_from_the_secondary(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        a = await _create(client, tenant, full_name="A", metadata={"k": "a"})
        b = await _create(client, tenant, full_name="B", external_id="ext-b", metadata={"k": "b"})
        response = await _merge(
            client, tenant, a["id"], b["id"], metadata="secondary", full_name="primary"
        )
        assert response.status_code == 201, response.text
        customer = response.json()["customer"]
        assert (customer["metadata"], customer["external_id"]) == ({"k": "b"}, "ext-b")
        found = await client.get(
            f"{INTERNAL}/by-external-id/ext-b", headers=bearer(tenant.admin_key)
        )
        assert found.json()["id"] == a["id"]

    async def test_refusals_change_nothing(
        self, client: httpx.AsyncClient, tenant: TenantHandle, factory: Factory
    ) -> None:
        a = await _create(client, tenant, full_name="A")
        b = await _create(client, tenant, full_name="B")
        before = [await _state(client, tenant, i) for i in (a["id"], b["id"])]
        other = await factory.tenant()
        foreign = await _create(client, other, full_name="Theirs")
        cases = [
            (await _merge(client, tenant, a["id"], a["id"]), 422),
            (await _merge(client, tenant, a["id"], foreign["id"]), 404),
            (await _merge(client, tenant, foreign["id"], b["id"]), 404),
            (await _merge(client, other, a["id"], b["id"]), 404),
            (await _merge(client, tenant, a["id"], b["id"], nickname="primary"), 422),
            (await _merge(client, tenant, a["id"], b["id"], email="both"), 422),
            (
                await client.post(
                    f"{BASE}/merge",
                    json={"primary": a["id"], "secondary": b["id"], "extra": 1},
                    headers=bearer(tenant.admin_key),
                ),
                422,
            ),
        ]
        assert [r.status_code for r, _ in cases] == [status for _, status in cases]
        assert all(r.headers["content-type"] == "application/problem+json" for r, _ in cases)
        assert [await _state(client, tenant, i) for i in (a["id"], b["id"])] == before
        assert (await _state(client, other, foreign["id"]))[0]["full_name"] == "Theirs"

    async def test_currencies_that_differ_cannot_be_added(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        ids = []
        for currency in ("EUR", "USD"):
            made = await _create(client, tenant, full_name=currency)
            await client.patch(
                f"{INTERNAL}/{made['id']}/statistics",
                json={
                    "increment_id": currency,
                    "orders": 1,
                    "order_value": "1",
                    "currency": currency,
                },
                headers=bearer(tenant.admin_key),
            )
            ids.append(made["id"])
        response = await _merge(client, tenant, *ids)
        assert response.status_code == 409
        assert "currencies" in response.json()["detail"]

    async def test_merged_record_in_another_merge_is_not_found(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        a, b, c = [await _create(client, tenant, full_name=n) for n in "ABC"]
        assert (await _merge(client, tenant, a["id"], b["id"])).status_code == 201
        assert (await _merge(client, tenant, c["id"], b["id"])).status_code == 404
        assert (await _merge(client, tenant, b["id"], c["id"])).status_code == 404

    async def test_crossed_concurrent_merges_leave_one_merged_pair(
        self, client: httpx.AsyncClient, raw_client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        a, b = [await _create(client, tenant, full_name=n) for n in "AB"]
        first, second = await asyncio.gather(
            _merge(raw_client, tenant, a["id"], b["id"]),
            _merge(raw_client, tenant, b["id"], a["id"]),
        )
        assert sorted([first.status_code, second.status_code]) == [201, 404]
        winner = first if first.status_code == 201 else second
        kept = winner.json()["customer"]["id"]
        listed = await client.get(BASE, headers=bearer(tenant.admin_key))
        assert [c["id"] for c in listed.json()["items"]] == [kept]


class TestUndo:
    async def test_twice_is_a_conflict(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        a, b = [await _create(client, tenant, full_name=n) for n in "AB"]
        merge_id = (await _merge(client, tenant, a["id"], b["id"])).json()["merge"]["id"]
        path = f"{BASE}/merges/{merge_id}/undo"
        assert (await client.post(path, headers=bearer(tenant.admin_key))).status_code == 200
        again = await client.post(path, headers=bearer(tenant.admin_key))
        assert again.status_code == 409
        shown = await client.get(f"{BASE}/merges/{merge_id}", headers=bearer(tenant.admin_key))
        assert shown.json()["undone_at"] is not None

    async def test_refused_after_the_primary_changed(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        a, b = [await _create(client, tenant, full_name=n) for n in "AB"]
        merge_id = (await _merge(client, tenant, a["id"], b["id"])).json()["merge"]["id"]
        edited = await client.patch(
            f"{BASE}/{a['id']}", json={"company": "Later"}, headers=bearer(tenant.admin_key)
        )
        assert edited.status_code == 200
        undo = await client.post(f"{BASE}/merges/{merge_id}/undo", headers=bearer(tenant.admin_key))
        assert undo.status_code == 409
        assert (
            await client.get(f"{BASE}/{b['id']}", headers=bearer(tenant.admin_key))
        ).status_code == 404

    async def test_refused_when_the_email_was_taken_since(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        a = await _create(client, tenant, full_name="A")
        b = await _create(client, tenant, full_name="B", email="b@example.com")
        response = await _merge(client, tenant, a["id"], b["id"], email="primary")
        merge_id = response.json()["merge"]["id"]
        # The primary kept no email, so the secondary's is free and a new record takes it.
        await _create(client, tenant, full_name="Newcomer", email="b@example.com")
        undo = await client.post(f"{BASE}/merges/{merge_id}/undo", headers=bearer(tenant.admin_key))
        assert undo.status_code == 409
        assert (
            await client.get(f"{BASE}/{b['id']}", headers=bearer(tenant.admin_key))
        ).status_code == 404

    async def test_unknown_merge(self, client: httpx.AsyncClient, tenant: TenantHandle) -> None:
        undo = await client.post(
            f"{BASE}/merges/mrg_00000000000000000000000000/undo", headers=bearer(tenant.admin_key)
        )
        assert undo.status_code == 404


class TestDuplicates:
    async def test_finds_each_kind_and_ranks_them(
        self, client: httpx.AsyncClient, tenant: TenantHandle, factory: Factory
    ) -> None:
        mailbox = [
            await _create(client, tenant, full_name="Ann Lee", email=e)
            for e in ("ann.lee@gmail.com", "annlee+shop@googlemail.com")
        ]
        phone = [
            await _create(client, tenant, full_name=n, phone=p)
            for n, p in (("Bob", "(415) 555-2671"), ("Robert", "+1 415 555 2671"))
        ]
        named = [
            await _create(client, tenant, full_name=n, company=c)
            for n, c in (("Doe, Jane", "Acme"), ("jane doe", "ACME"), ("Jane Doe", "Other"))
        ]
        gone = await _create(client, tenant, full_name="Ann Lee", email="annlee@gmail.com")
        await client.delete(f"{BASE}/{gone['id']}", headers=bearer(tenant.admin_key))
        other = await factory.tenant()
        await _create(client, other, full_name="Ann Lee", email="a.nnlee@gmail.com")

        response = await client.get(f"{BASE}/duplicates", headers=bearer(tenant.admin_key))
        assert response.status_code == 200, response.text
        pairs = response.json()
        found = {frozenset(c["id"] for c in p["customers"]): p for p in pairs}
        assert set(found) == {
            frozenset(c["id"] for c in mailbox),
            frozenset(c["id"] for c in phone),
            frozenset(c["id"] for c in named[:2]),
        }
        assert set(found[frozenset(c["id"] for c in mailbox)]["reasons"]) == {"same_mailbox"}
        assert set(found[frozenset(c["id"] for c in phone)]["reasons"]) == {"same_phone"}
        assert [p["score"] for p in pairs] == sorted((p["score"] for p in pairs), reverse=True)

        strict = await client.get(
            f"{BASE}/duplicates", params={"min_score": 0.9}, headers=bearer(tenant.admin_key)
        )
        assert {frozenset(c["id"] for c in p["customers"]) for p in strict.json()} == {
            frozenset(c["id"] for c in mailbox),
            frozenset(c["id"] for c in phone),
        }

    @pytest.mark.parametrize("params", [{"limit": 501}, {"limit": 0}, {"min_score": 2}])
    async def test_bad_parameters(
        self, client: httpx.AsyncClient, tenant: TenantHandle, params: dict[str, Any]
    ) -> None:
        response = await client.get(
            f"{BASE}/duplicates", params=params, headers=bearer(tenant.admin_key)
        )
        assert response.status_code == 422
