"""Free text at ingest: the tenant decides whether notes keep personal data as given,
masked or pseudonymised."""

from __future__ import annotations

import httpx
import pytest

from custos.privacy import erasure
from custos.runtime import Runtime
from tests.factories import Factory, TenantHandle, bearer, configure_tenant

NOTE = "Customer wrote from amara@example.com, call back on (415) 555-2671."


async def _tenant_with(client: httpx.AsyncClient, factory: Factory, policy: str) -> TenantHandle:
    tenant = await factory.tenant()
    changed = await configure_tenant(client, factory, tenant.id, {"privacy": {"free_text": policy}})
    assert changed.status_code == 200, changed.text
    return tenant


async def _note(client: httpx.AsyncClient, tenant: TenantHandle, body: str) -> str:
    made = await client.post(
        "/api/v1/customers", json={"full_name": "Amara Nwosu"}, headers=bearer(tenant.admin_key)
    )
    note = await client.post(
        f"/api/v1/customers/{made.json()['id']}/notes",
        json={"body": body},
        headers=bearer(tenant.admin_key),
    )
    assert note.status_code == 201, note.text
    text: str = note.json()["body"]
    return text


class TestFreeTextPolicy:
    async def test_as_is_by_default(self, client: httpx.AsyncClient, factory: Factory) -> None:
        tenant = await factory.tenant()
        assert await _note(client, tenant, NOTE) == NOTE

    async def test_masked(self, client: httpx.AsyncClient, factory: Factory) -> None:
        tenant = await _tenant_with(client, factory, "mask")
        stored = await _note(client, tenant, NOTE + " Regards, Amara Nwosu")
        assert stored == (
            "Customer wrote from a***@example.com, call back on ******2671. Regards, A***u"
        )

    async def test_pseudonymised_and_reversible(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await _tenant_with(client, factory, "pseudonymize")
        # The record's own name is known, wherever it stands in the note.
        stored = await _note(client, tenant, "Amara Nwosu " + NOTE)
        assert "amara@example.com" not in stored
        assert "Amara" not in stored
        assert stored.count("pse_") == 3
        back = await client.post(
            "/api/v1/privacy/reidentify", json={"text": stored}, headers=bearer(tenant.admin_key)
        )
        assert back.json()["text"] == "Amara Nwosu " + NOTE

    @pytest.mark.parametrize("policy", ["as_is", "mask", "pseudonymize"])
    async def test_text_without_personal_data_is_kept(
        self, client: httpx.AsyncClient, factory: Factory, policy: str
    ) -> None:
        tenant = await _tenant_with(client, factory, policy)
        assert (
            await _note(client, tenant, "Prefers the blue edition.") == "Prefers the blue edition."
        )


class TestErasureOfPseudonymisedText:
    async def test_pseudonymised_mentions_of_an_erased_person_are_scrubbed_too(
        self, client: httpx.AsyncClient, factory: Factory, runtime: Runtime
    ) -> None:
        tenant = await _tenant_with(client, factory, "pseudonymize")
        admin = bearer(tenant.admin_key)
        person = await client.post(
            "/api/v1/customers",
            json={"full_name": "Tomasz Wieczorek", "email": "tomasz.w@example.com"},
            headers=admin,
        )
        other = await client.post(
            "/api/v1/customers", json={"full_name": "Someone Else"}, headers=admin
        )
        note = await client.post(
            f"/api/v1/customers/{other.json()['id']}/notes",
            json={"body": "Referred by tomasz.w@example.com"},
            headers=admin,
        )
        assert "pse_" in note.json()["body"]
        await client.post(
            f"/api/v1/privacy/erase/{person.json()['id']}",
            params={"immediate": "true"},
            headers=admin,
        )
        await erasure.run_due(runtime)
        notes = await client.get(f"/api/v1/customers/{other.json()['id']}/notes", headers=admin)
        assert notes.json()[0]["body"] == "Referred by [erased]"


class TestFeedbackFreeText:
    async def test_feedback_content_and_subject_follow_the_policy(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await _tenant_with(client, factory, "mask")
        posted = await client.post(
            "/api/v1/feedback",
            json={"feedback_type": "complaint", "subject": "From amara@example.com",
                  "content": NOTE},
            headers=bearer(tenant.admin_key),
        )  # fmt: skip
        assert posted.status_code == 201, posted.text
        stored = posted.json()
        assert stored["subject"] == "From a***@example.com"
        assert stored["content"] == "Customer wrote from a***@example.com, call back on ******2671."
        assert stored["sentiment_label"] in {"negative", "neutral", "positive"}

    async def test_the_customers_own_name_is_known_as_in_notes(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await _tenant_with(client, factory, "pseudonymize")
        made = await client.post(
            "/api/v1/customers", json={"full_name": "Amara Nwosu"}, headers=bearer(tenant.admin_key)
        )
        posted = await client.post(
            "/api/v1/feedback/batch",
            json={
                "items": [
                    {"customer_id": made.json()["id"], "content": "Amara Nwosu " + NOTE},
                    {"content": "Amara Nwosu " + NOTE},  # from nobody: the name is not known
                ]
            },
            headers=bearer(tenant.admin_key),
        )
        assert posted.status_code == 200, posted.text
        theirs, anonymous = [
            (await client.get(f"/api/v1/feedback/{i}", headers=bearer(tenant.admin_key))).json()
            for i in posted.json()["ids"]
        ]
        assert "Amara" not in theirs["content"]
        assert theirs["content"].count("pse_") == 3
        assert anonymous["content"].count("pse_") == 2  # the email and the phone only

    async def test_as_given_by_default_in_a_batch_too(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        batch = await client.post(
            "/api/v1/feedback/batch",
            json={"items": [{"feedback_type": "general_feedback", "content": NOTE}]},
            headers=bearer(tenant.admin_key),
        )
        assert batch.status_code in (200, 201), batch.text
        listed = await client.get("/api/v1/feedback", headers=bearer(tenant.admin_key))
        assert [item["content"] for item in listed.json()["items"]] == [NOTE]
