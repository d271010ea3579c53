"""A person with data in every table Custos has: what export must return in full and
erasure must remove in full."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.factories import TenantHandle, bearer

PASSWORD = "a-long-customer-password"


@dataclass(frozen=True)
class Person:
    """Identifiers unique to one test, so a search of the shared database finds only them."""

    email: str
    phone: str
    name: str
    other_email: str
    other_phone: str

    @classmethod
    def new(cls) -> Person:
        tag = secrets.token_hex(3)
        # Seven random digits, the exchange 200 to 499: other tests' numbers are 555 ones.
        digits = f"{2_000_000 + secrets.randbelow(3_000_000)}"
        return cls(
            email=f"marguerite.okonkwo-{tag}@example.org",
            phone=f"+1415{digits}",
            name=f"Marguerite Okonkwo-{tag.upper()}",
            other_email=f"m.okonkwo.{tag}@work.example.net",
            other_phone=f"+44207{digits}",
        )

    @property
    def needles(self) -> list[str]:
        return [
            self.email,
            self.phone,
            self.phone.lstrip("+"),
            self.name,
            self.other_email,
            self.other_phone,
        ]


@dataclass
class Seeded:
    customer_id: str
    twin_id: str
    merge_id: str
    user_id: str
    token: str
    note_ids: list[str]
    other_customer_id: str
    mention_note_id: str
    person: Person
    facts: dict[str, Any] = field(default_factory=dict)


async def seed_person(client: httpx.AsyncClient, tenant: TenantHandle) -> Seeded:
    admin = bearer(tenant.admin_key)
    p = Person.new()
    EMAIL, PHONE, NAME = p.email, p.phone, p.name

    async def post(path: str, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
        response = await client.post(path, json=body, headers={**admin, **kw.get("headers", {})})
        assert response.status_code in (200, 201), (path, response.text)
        data: dict[str, Any] = response.json()
        return data

    person = await post(
        "/api/v1/customers",
        {
            "full_name": NAME,
            "email": EMAIL,
            "phone": PHONE,
            "external_id": "crm-4711",
            "company": "Lind Botanicals",
            "address": {"line1": "12 Orchard Lane", "city": "Springfield", "country": "US"},
            "tags": ["vip", "newsletter"],
            "metadata": {"favourite_colour": "teal"},
        },
        headers={"Idempotency-Key": "seed-person-1"},
    )
    twin = await post(
        "/api/v1/customers",
        {"full_name": NAME, "email": p.other_email, "phone": p.other_phone},
    )
    merge = await post(
        "/api/v1/customers/merge", {"primary": person["id"], "secondary": twin["id"]}
    )
    notes = [
        await post(f"/api/v1/customers/{person['id']}/notes", {"body": body})
        for body in ("Prefers calls after 5pm", f"Asked to update email to {EMAIL}")
    ]
    increment = await client.patch(
        f"/api/v1/internal/customers/{person['id']}/statistics",
        json={"increment_id": "order-90001", "orders": 2, "order_value": "120.50",
              "currency": "EUR"},
        headers=admin,
    )  # fmt: skip
    assert increment.status_code == 200, increment.text
    for purpose in ("marketing", "analytics"):
        await post(
            "/api/v1/privacy/consent",
            {"customer_id": person["id"], "consent_type": purpose, "source": "signup-form",
             "policy_version": "2026-01"},
        )  # fmt: skip
    revoked = await client.request(
        "DELETE",
        "/api/v1/privacy/consent",
        params={"customer_id": person["id"], "consent_type": "analytics"},
        headers=admin,
    )
    assert revoked.status_code == 200, revoked.text
    access = await post(
        "/api/v1/privacy/requests",
        {"type": "access", "customer_id": person["id"], "note": f"Emailed from {EMAIL}"},
    )
    user = await post(
        "/api/v1/users",
        {"email": EMAIL, "password": PASSWORD, "role": "customer", "customer_id": person["id"],
         "full_name": NAME},
    )  # fmt: skip
    login = await client.post(
        "/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD, "tenant": tenant.slug}
    )
    token = login.json()["access_token"]
    other = await post(
        "/api/v1/customers", {"full_name": "Neighbour Person", "email": "neighbour@example.com"}
    )
    mention = await post(
        f"/api/v1/customers/{other['id']}/notes",
        {"body": f"Referred by {NAME} ({EMAIL}, {PHONE})"},
    )
    return Seeded(
        customer_id=person["id"],
        twin_id=twin["id"],
        merge_id=merge["merge"]["id"],
        user_id=user["id"],
        token=token,
        note_ids=[n["id"] for n in notes],
        other_customer_id=other["id"],
        mention_note_id=mention["id"],
        person=p,
        facts={
            "external_id": "crm-4711",
            "company": "Lind Botanicals",
            "line1": "12 Orchard Lane",
            "tags": ["vip", "newsletter"],
            "metadata": {"favourite_colour": "teal"},
            "notes": ["Prefers calls after 5pm", f"Asked to update email to {EMAIL}"],
            "increment_id": "order-90001",
            "consents": {"marketing": True, "analytics": False},
            "access_request_id": access["id"],
        },
    )
