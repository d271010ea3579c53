"""Export: everything Custos holds on a person, from every registered holder."""

from __future__ import annotations

import httpx

from custos.privacy.holders import registered
from tests.factories import Factory, bearer
from tests.privacy.seed import seed_person


class TestExport:
    async def test_export_holds_every_seeded_fact(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        seeded = await seed_person(client, tenant)
        p, facts = seeded.person, seeded.facts
        response = await client.get(
            f"/api/v1/privacy/export/{seeded.customer_id}", headers=bearer(tenant.admin_key)
        )
        assert response.status_code == 200, response.text
        export = response.json()
        holders = export["holders"]
        assert export["customer_id"] == seeded.customer_id
        # Every registered holder that keeps data of its own is in the export; these keep
        # only copies of it (responses, files, cache entries) or reports about rows.
        copies = {"idempotency_keys", "bulk_files", "bulk_operation_errors", "read_cache",
                  "webhook_attempts"}  # fmt: skip
        assert set(holders) == {h.name for h in registered()} - copies

        records = {r["id"]: r for r in holders["customers"]}
        assert set(records) == {seeded.customer_id, seeded.twin_id}
        record = records[seeded.customer_id]
        expected = {
            "full_name": p.name,
            "email": p.email,
            "phone": p.phone,
            "external_id": facts["external_id"],
            "company": facts["company"],
            "tags": facts["tags"],
            "metadata": facts["metadata"],
            "order_count": 2,
            "total_order_value": "120.50",
            "currency": "EUR",
        }
        assert {k: record[k] for k in expected} == expected
        assert record["address"]["line1"] == facts["line1"]
        twin = records[seeded.twin_id]
        assert (twin["email"], twin["phone"], twin["merged_into_id"]) == (
            p.other_email,
            p.other_phone,
            seeded.customer_id,
        )

        assert [n["body"] for n in holders["customer_notes"]] == facts["notes"]
        assert [i["increment_id"] for i in holders["customer_stat_increments"]] == [
            facts["increment_id"]
        ]
        assert [m["id"] for m in holders["customer_merges"]] == [seeded.merge_id]
        consents = holders["consents"]
        assert [(c["purpose"], c["granted"]) for c in consents] == [
            ("marketing", True),
            ("analytics", True),
            ("analytics", False),
        ]
        assert all(c["policy_version"] == "2026-01" for c in consents)
        assert consents[0]["source"] == "signup-form"
        requests = holders["privacy_requests"]
        assert [r["id"] for r in requests] == [facts["access_request_id"]]
        assert requests[0]["note"] == f"Emailed from {p.email}"
        [user] = holders["users"]
        assert (user["id"], user["email"], user["full_name"]) == (seeded.user_id, p.email, p.name)
        audited = {(e["action"], e["target_id"]) for e in holders["audit_logs"]}
        for action in ("customer.created", "customer.merged", "customer.note_added",
                       "consent.granted", "consent.revoked"):  # fmt: skip
            assert (action, seeded.customer_id) in audited, action
        assert ("user.created", seeded.user_id) in audited
        event_types = {e["type"] for e in holders["events"]}
        assert {"customer.created", "customer.merged", "consent.granted"} <= event_types

    async def test_a_customer_exports_their_own_data_and_nobody_elses(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        seeded = await seed_person(client, tenant)
        mine = await client.get("/api/v1/privacy/me/export", headers=bearer(seeded.token))
        assert mine.status_code == 200
        assert mine.json()["customer_id"] == seeded.customer_id
        assert mine.json()["holders"]["customers"][0]["email"] == seeded.person.email
        others = await client.get(
            f"/api/v1/privacy/export/{seeded.other_customer_id}", headers=bearer(seeded.token)
        )
        assert others.status_code == 403

    async def test_unknown_customer_is_404(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        response = await client.get(
            "/api/v1/privacy/export/cus_01M8QVHWDE28WJR9KYAYT8RD1K",
            headers=bearer(tenant.admin_key),
        )
        assert response.status_code == 404
