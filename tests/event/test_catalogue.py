"""The event catalogue: every type has a JSON Schema generated from its payload model and an
example that matches it, and what Custos really writes matches the schema too."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from custos import events
from custos.customer.schemas import CustomerPayload
from custos.runtime import Runtime
from tests.bulk.helpers import csv_bytes, run_to_end, start_import
from tests.factories import Factory, TenantHandle, bearer
from tests.receiver import Answer, Receiver

RunJobs = Callable[[], Awaitable[None]]


async def _catalogue(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    response = await client.get("/api/v1/docs/events")
    assert response.status_code == 200
    return {entry["type"]: entry for entry in response.json()}


class TestCatalogue:
    async def test_every_type_is_documented_with_a_schema_and_an_example(
        self, client: httpx.AsyncClient
    ) -> None:
        documented = await _catalogue(client)
        assert set(documented) == set(events.CATALOGUE)
        for name, entry in documented.items():
            Draft202012Validator.check_schema(entry["schema"])
            errors = list(Draft202012Validator(entry["schema"]).iter_errors(entry["example"]))
            assert errors == [], f"{name}: {errors[0].message if errors else ''}"
            assert entry["example"]["type"] == name
            assert entry["description"]

    async def test_a_message_of_another_type_does_not_match_the_schema(
        self, client: httpx.AsyncClient
    ) -> None:
        documented = await _catalogue(client)
        created = documented["customer.created"]
        wrong = {**created["example"], "type": "customer.deleted"}
        assert not Draft202012Validator(created["schema"]).is_valid(wrong)
        broken = {**created["example"], "data": {"customer": {"id": 7}}}
        assert not Draft202012Validator(created["schema"]).is_valid(broken)

    async def test_what_custos_writes_matches_the_documented_schemas(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
        runtime: Runtime,
    ) -> None:
        tenant = await factory.tenant()
        headers = bearer(tenant.admin_key)
        gone = await client.post(
            "/api/v1/webhooks", json={"url": f"{receiver.url}/gone"}, headers=headers
        )
        receiver.script = lambda _r: Answer(410)
        first = (
            await client.post("/api/v1/customers", json={"full_name": "A"}, headers=headers)
        ).json()
        second = (
            await client.post("/api/v1/customers", json={"full_name": "B"}, headers=headers)
        ).json()
        await client.patch(
            f"/api/v1/customers/{first['id']}", json={"company": "C"}, headers=headers
        )
        merged = await client.post(
            "/api/v1/customers/merge",
            json={"primary": first["id"], "secondary": second["id"]},
            headers=headers,
        )
        await client.post(
            f"/api/v1/customers/merges/{merged.json()['merge']['id']}/undo", headers=headers
        )
        await client.delete(f"/api/v1/customers/{second['id']}", headers=headers)
        await client.post(f"/api/v1/customers/{second['id']}/restore", headers=headers)
        key = await client.post(
            "/api/v1/api-keys", json={"name": "k", "scopes": ["users:read"]}, headers=headers
        )
        await client.post(f"/api/v1/api-keys/{key.json()['id']}/rotate", headers=headers)
        await client.delete(f"/api/v1/api-keys/{key.json()['id']}", headers=headers)
        await client.post("/api/v1/events/trigger", json={}, headers=headers)
        await client.post(f"/api/v1/webhooks/{gone.json()['id']}/test", headers=headers)
        await _feedback_bulk_consent_and_privacy(client, runtime, tenant, first["id"])
        await run_jobs()

        documented = await _catalogue(client)
        page = await client.get("/api/v1/events", params={"limit": 1000}, headers=headers)
        written = page.json()["items"]
        assert {e["type"] for e in written} == set(events.CATALOGUE), "every type was written"
        for message in written:
            validator = Draft202012Validator(documented[message["type"]]["schema"])
            errors = list(validator.iter_errors(message))
            assert errors == [], f"{message['type']}: {errors[0].message if errors else ''}"


async def _feedback_bulk_consent_and_privacy(
    client: httpx.AsyncClient, runtime: Runtime, tenant: TenantHandle, customer_id: str
) -> None:
    """Every event of feedback, bulk operations, consent and data subject requests."""
    headers = bearer(tenant.admin_key)

    async def ok(response: Awaitable[httpx.Response]) -> dict[str, Any]:
        answered = await response
        assert answered.status_code < 300, answered.text
        body: dict[str, Any] = answered.json() if answered.content else {}
        return body

    item = await ok(
        client.post(
            "/api/v1/feedback",
            json={"customer_id": customer_id, "content": "Late again", "feedback_type": "praise"},
            headers=headers,
        )
    )
    await ok(
        client.patch(f"/api/v1/feedback/{item['id']}", json={"status": "triaged"}, headers=headers)
    )
    started = await start_import(client, tenant.admin_key, csv_bytes([["name"], ["Imported"]]))
    await run_to_end(runtime, client, tenant.admin_key, started.json()["id"])
    consent = {"customer_id": customer_id, "consent_type": "marketing"}
    await ok(client.post("/api/v1/privacy/consent", json=consent, headers=headers))
    await ok(client.request("DELETE", "/api/v1/privacy/consent", params=consent, headers=headers))

    async def request(*steps: str) -> None:
        made = await ok(
            client.post(
                "/api/v1/privacy/requests",
                json={"type": "access", "customer_id": customer_id},
                headers=headers,
            )
        )
        for status in steps:
            await ok(
                client.post(
                    f"/api/v1/privacy/requests/{made['id']}/transitions",
                    json={"status": status},
                    headers=headers,
                )
            )

    await request("verified", "processing", "completed")
    await request("verified", "processing", "failed")
    await request("cancelled")
    erased = await ok(
        client.post("/api/v1/customers", json={"full_name": "Leaving Soon"}, headers=headers)
    )
    await ok(
        client.post(
            f"/api/v1/privacy/erase/{erased['id']}", params={"immediate": "true"}, headers=headers
        )
    )


class TestDefine:
    def test_a_type_is_defined_once(self) -> None:
        with pytest.raises(ValueError, match="twice"):
            events.define(
                "customer.created",
                "again",
                CustomerPayload,
                events.CUSTOMER_CREATED.example,
            )

    @pytest.mark.parametrize("name", ["Customer.Created", "customer", "customer..x", "a.b-c"])
    def test_names_are_dotted_lower_case(self, name: str) -> None:
        with pytest.raises(ValueError, match="dotted"):
            events.define(name, "x", CustomerPayload, events.CUSTOMER_CREATED.example)

    def test_the_example_must_be_of_the_payload_model(self) -> None:
        class Other(BaseModel):
            x: int = 1

        with pytest.raises(TypeError, match="example"):
            events.define("test.example_mismatch", "x", CustomerPayload, Other())
        assert "test.example_mismatch" not in events.CATALOGUE
