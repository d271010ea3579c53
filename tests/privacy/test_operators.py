"""Operators: mask, redact, replace, hash, pseudonymize (and reidentify), encrypt."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.factories import Factory, TenantHandle, bearer

TEXT = "Mail jane.doe@example.com, call (415) 555-7890, SSN 123-45-6789."


@pytest.fixture
async def tenant(factory: Factory) -> TenantHandle:
    return await factory.tenant()


async def _redact(
    client: httpx.AsyncClient, tenant: TenantHandle, **body: object
) -> httpx.Response:
    return await client.post(
        "/api/v1/privacy/redact", json={"text": TEXT, **body}, headers=bearer(tenant.admin_key)
    )


class TestOperators:
    @pytest.mark.parametrize(
        ("operator", "expected"),
        [
            ("mask", "Mail j***@example.com, call ******7890, SSN ***-**-6789."),
            ("redact", "Mail , call , SSN ."),
            ("replace", "Mail <EMAIL>, call <PHONE>, SSN <SSN>."),
        ],
    )
    async def test_the_simple_operators(
        self, raw_client: httpx.AsyncClient, tenant: TenantHandle, operator: str, expected: str
    ) -> None:
        response = await _redact(raw_client, tenant, operator=operator)
        assert response.status_code == 200, response.text
        assert response.json()["text"] == expected
        assert len(response.json()["entities"]) == 3

    async def test_options_and_per_type_operators(
        self, raw_client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        response = await _redact(
            raw_client,
            tenant,
            operator="replace",
            options={"template": "[{type}]"},
            operators={"phone": {"operator": "mask", "options": {"masking_char": "#"}}},
        )
        assert response.json()["text"] == "Mail [email], call ######7890, SSN [ssn]."

    async def test_hash_is_stable_within_a_tenant_and_differs_across(
        self, raw_client: httpx.AsyncClient, factory: Factory, tenant: TenantHandle
    ) -> None:
        first = (await _redact(raw_client, tenant, operator="hash")).json()["text"]
        again = (await _redact(raw_client, tenant, operator="hash")).json()["text"]
        other = (await _redact(raw_client, await factory.tenant(), operator="hash")).json()["text"]
        assert first == again
        assert first != other
        assert re.fullmatch(r"Mail [0-9a-f]{16}, call [0-9a-f]{16}, SSN [0-9a-f]{16}\.", first)

    @pytest.mark.parametrize(
        "body",
        [
            {"operator": "shred"},
            {"operator": "mask", "options": {"masking_char": "**"}},
            {"operator": "hash", "options": {"length": 4}},
            {"operator": "mask", "operators": {"email": {"operator": "nope"}}},
            {"operator": "mask", "options": {"unknown": True}},
        ],
    )
    async def test_bad_operators_and_options_are_422(
        self, raw_client: httpx.AsyncClient, tenant: TenantHandle, body: dict[str, object]
    ) -> None:
        assert (await _redact(raw_client, tenant, **body)).status_code == 422


class TestPseudonymisation:
    async def test_round_trip_and_consistency(
        self, client: httpx.AsyncClient, raw_client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        first = (await _redact(raw_client, tenant, operator="pseudonymize")).json()["text"]
        second = (await _redact(raw_client, tenant, operator="pseudonymize")).json()["text"]
        assert first == second  # the same value, the same token
        assert "jane.doe" not in first
        assert first.count("pse_") == 3
        back = await client.post(
            "/api/v1/privacy/reidentify", json={"text": first}, headers=bearer(tenant.admin_key)
        )
        assert back.status_code == 200, back.text
        assert back.json() == {"text": TEXT, "restored": 3, "unresolved": 0}

    async def test_another_tenant_cannot_reidentify(
        self,
        client: httpx.AsyncClient,
        raw_client: httpx.AsyncClient,
        factory: Factory,
        tenant: TenantHandle,
    ) -> None:
        tokens = (await _redact(raw_client, tenant, operator="pseudonymize")).json()["text"]
        other = await factory.tenant()
        response = await client.post(
            "/api/v1/privacy/reidentify", json={"text": tokens}, headers=bearer(other.admin_key)
        )
        assert response.json() == {"text": tokens, "restored": 0, "unresolved": 3}

    async def test_encrypted_values_come_back_but_differ_each_time(
        self, client: httpx.AsyncClient, raw_client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        first = (await _redact(raw_client, tenant, operator="encrypt")).json()["text"]
        second = (await _redact(raw_client, tenant, operator="encrypt")).json()["text"]
        assert first != second
        assert first.count("enc_") == 3
        back = await client.post(
            "/api/v1/privacy/reidentify", json={"text": second}, headers=bearer(tenant.admin_key)
        )
        assert back.json()["text"] == TEXT

    async def test_reidentify_needs_its_scope_and_is_audited_without_values(
        self,
        client: httpx.AsyncClient,
        raw_client: httpx.AsyncClient,
        factory: Factory,
        tenant: TenantHandle,
    ) -> None:
        tokens = (await _redact(raw_client, tenant, operator="pseudonymize")).json()["text"]
        reader = await factory.key(tenant.id, ["privacy:read", "privacy:write"])
        refused = await client.post(
            "/api/v1/privacy/reidentify", json={"text": tokens}, headers=bearer(reader)
        )
        assert refused.status_code == 403
        await client.post(
            "/api/v1/privacy/reidentify", json={"text": tokens}, headers=bearer(tenant.admin_key)
        )
        audit = await client.get(
            "/api/v1/audit",
            params={"action": "privacy.reidentified"},
            headers=bearer(tenant.admin_key),
        )
        [entry] = audit.json()["items"]
        assert entry["changes"] == {"restored": {"from": None, "to": 3}}
        assert "jane" not in str(entry)

    async def test_tampered_tokens_stay_as_they_are(
        self, client: httpx.AsyncClient, raw_client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        tokens = (await _redact(raw_client, tenant, operator="pseudonymize")).json()["text"]
        token = re.search(r"pse_[\w-]+", tokens).group()  # type: ignore[union-attr]
        tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        response = await client.post(
            "/api/v1/privacy/reidentify",
            json={"text": f"{tampered} and pse_not-base64-at-all!!!!!!!!"},
            headers=bearer(tenant.admin_key),
        )
        assert response.json()["restored"] == 0
        assert response.json()["text"].startswith(tampered)
