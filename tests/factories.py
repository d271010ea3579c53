"""Small factories: tenants, users and keys made through the services, as the API would."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from custos.api_key import service as key_service
from custos.api_key.schemas import ApiKeyCreate
from custos.app import create_app
from custos.auth.scopes import ROLE_SCOPES, Role
from custos.runtime import Runtime
from custos.tenant import service as tenant_service
from custos.tenant.schemas import TenantCreate
from custos.user import service as user_service
from custos.user.schemas import UserCreate

PASSWORD = "correct-horse-battery-staple"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Account:
    id: str
    tenant_id: str
    tenant_slug: str
    email: str
    password: str
    role: str


@dataclass
class TenantHandle:
    id: str
    slug: str
    admin: Account
    admin_key: str


class Factory:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def tenant(self, *, plan: str = "starter") -> TenantHandle:
        slug = f"t-{secrets.token_hex(5)}"
        async with self.runtime.db.transaction(system=True) as session:
            tenant = await tenant_service.create(
                self.runtime,
                session,
                None,
                TenantCreate(name=f"Tenant {slug}", slug=slug, plan=plan),  # type: ignore[arg-type]
            )
        admin = await self.user(tenant.id, slug, Role.admin)
        key = await self.key(tenant.id, sorted(ROLE_SCOPES[Role.admin]))
        return TenantHandle(id=tenant.id, slug=slug, admin=admin, admin_key=key)

    async def user(
        self,
        tenant_id: str,
        tenant_slug: str,
        role: Role,
        *,
        platform_admin: bool = False,
        email: str | None = None,
    ) -> Account:
        email = email or f"{role.value}-{secrets.token_hex(4)}@example.com"
        async with self.runtime.db.transaction(system=True) as session:
            user = await user_service.create(
                self.runtime,
                session,
                None,
                tenant_id,
                UserCreate(email=email, password=PASSWORD, role=role),
                platform_admin=platform_admin,
            )
        return Account(user.id, tenant_id, tenant_slug, email, PASSWORD, role.value)

    async def key(
        self,
        tenant_id: str,
        scopes: list[str],
        name: str = "test",
        rate_limits: dict[str, int] | None = None,
    ) -> str:
        body = ApiKeyCreate.model_validate(
            {"name": name, "scopes": scopes, "rate_limits": rate_limits}
        )
        async with self.runtime.db.transaction(system=True) as session:
            issued = await key_service.create(self.runtime, session, None, tenant_id, body)
        return issued.secret

    async def platform_admin(self) -> Account:
        ops = await self.tenant()
        return await self.user(ops.id, ops.slug, Role.admin, platform_admin=True)


async def login(client: httpx.AsyncClient, account: Account) -> dict[str, str]:
    response = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, str] = response.json()
    return tokens


async def access_token(client: httpx.AsyncClient, account: Account) -> str:
    return (await login(client, account))["access_token"]


async def configure_tenant(
    client: httpx.AsyncClient, factory: Factory, tenant_id: str, settings: dict[str, Any]
) -> httpx.Response:
    """Change a tenant's settings as a platform operator would."""
    operator = await factory.platform_admin()
    token = await access_token(client, operator)
    return await client.patch(
        f"/api/admin/tenants/{tenant_id}", json={"settings": settings}, headers=bearer(token)
    )


def address() -> str:
    """A random documentation-range client address: per-address counters in Redis outlive a
    test, so each test that counts them comes from an address of its own."""
    return f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"


def client_for(runtime: Runtime, ip: str | None = None) -> httpx.AsyncClient:
    """A client of an app built on `runtime` (for settings other than the suite's)."""
    app = create_app(runtime.settings, runtime)
    transport = httpx.ASGITransport(app=app, client=(ip or address(), 40_000))
    return httpx.AsyncClient(transport=transport, base_url="http://t")
