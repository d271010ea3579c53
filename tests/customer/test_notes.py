from __future__ import annotations

import httpx
import pytest

from tests.factories import Factory, TenantHandle, bearer

BASE = "/api/v1/customers"


@pytest.fixture
async def tenant(factory: Factory) -> TenantHandle:
    return await factory.tenant()


async def _customer(client: httpx.AsyncClient, tenant: TenantHandle) -> str:
    response = await client.post(
        BASE, json={"full_name": "Noted Person"}, headers=bearer(tenant.admin_key)
    )
    customer_id: str = response.json()["id"]
    return customer_id


class TestNotes:
    async def test_add_list_and_delete_with_author_and_time(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        customer_id = await _customer(client, tenant)
        headers = bearer(tenant.admin_key)
        first = await client.post(
            f"{BASE}/{customer_id}/notes", json={"body": "Called about renewal"}, headers=headers
        )
        assert first.status_code == 201
        note = first.json()
        assert note["author_type"] == "api_key"
        assert note["author_id"].startswith("key_")
        await client.post(f"{BASE}/{customer_id}/notes", json={"body": "Second"}, headers=headers)
        listed = (await client.get(f"{BASE}/{customer_id}/notes", headers=headers)).json()
        assert [n["body"] for n in listed] == ["Second", "Called about renewal"]
        deleted = await client.delete(f"{BASE}/{customer_id}/notes/{note['id']}", headers=headers)
        assert deleted.status_code == 204
        listed = (await client.get(f"{BASE}/{customer_id}/notes", headers=headers)).json()
        assert [n["body"] for n in listed] == ["Second"]
        again = await client.delete(f"{BASE}/{customer_id}/notes/{note['id']}", headers=headers)
        assert again.status_code == 404

    async def test_bad_notes_and_missing_customers(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        customer_id = await _customer(client, tenant)
        headers = bearer(tenant.admin_key)
        for body in ({"body": ""}, {"body": "x" * 10_001}, {}, {"body": "ok", "pinned": True}):
            response = await client.post(f"{BASE}/{customer_id}/notes", json=body, headers=headers)
            assert response.status_code == 422, body
        missing = await client.post(
            f"{BASE}/cus_nope/notes", json={"body": "hello"}, headers=headers
        )
        assert missing.status_code == 404

    async def test_the_note_text_stays_out_of_the_audit_log(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        customer_id = await _customer(client, tenant)
        headers = bearer(tenant.admin_key)
        await client.post(
            f"{BASE}/{customer_id}/notes", json={"body": "SSN 078-05-1120"}, headers=headers
        )
        audit = await client.get(
            "/api/v1/audit", params={"target_id": customer_id}, headers=headers
        )
        assert "078-05-1120" not in audit.text
        assert "customer.note_added" in audit.text


class TestTimeline:
    async def test_history_and_notes_newest_first(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        customer_id = await _customer(client, tenant)
        headers = bearer(tenant.admin_key)
        await client.patch(f"{BASE}/{customer_id}", json={"company": "Acme"}, headers=headers)
        await client.post(
            f"{BASE}/{customer_id}/notes", json={"body": "Met at expo"}, headers=headers
        )
        await client.delete(f"{BASE}/{customer_id}", headers=headers)
        timeline = (await client.get(f"{BASE}/{customer_id}/timeline", headers=headers)).json()
        assert [(e["kind"], e.get("action") or e.get("body")) for e in timeline] == [
            ("change", "customer.deleted"),
            ("change", "customer.note_added"),
            ("note", "Met at expo"),
            ("change", "customer.updated"),
            ("change", "customer.created"),
        ]
        assert timeline[3]["changes"]["company"] == {"from": None, "to": "Acme"}
        limited = await client.get(
            f"{BASE}/{customer_id}/timeline", params={"limit": 2}, headers=headers
        )
        assert len(limited.json()) == 2


class TestNotesOnDeletedRecords:
    async def test_a_soft_deleted_customer_takes_no_notes_but_keeps_its_timeline(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        customer_id = await _customer(client, tenant)
        headers = bearer(tenant.admin_key)
        await client.post(f"{BASE}/{customer_id}/notes", json={"body": "before"}, headers=headers)
        await client.delete(f"{BASE}/{customer_id}", headers=headers)
        added = await client.post(
            f"{BASE}/{customer_id}/notes", json={"body": "after"}, headers=headers
        )
        assert added.status_code == 404
        assert (await client.get(f"{BASE}/{customer_id}/notes", headers=headers)).status_code == 404
        # The history of a deleted record stays readable, for whoever must reconstruct it.
        timeline = await client.get(f"{BASE}/{customer_id}/timeline", headers=headers)
        assert [e.get("body") for e in timeline.json() if e["kind"] == "note"] == ["before"]
