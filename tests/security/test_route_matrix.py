"""Role-by-route: every scoped route refuses, with 403, each role and each API key that lacks
its scope, and lets through those that hold it. Generated from the app's own routes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from custos.auth.scopes import ROLE_SCOPES, SCOPES, Role
from tests.factories import Factory, TenantHandle, bearer, login
from tests.security.routes import (
    AUTHENTICATED,
    PUBLIC,
    READ_ONLY_POSTS,
    ROUTE_POLICY,
    concrete,
    declared_policy,
    served_routes,
)

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def test_every_served_route_has_a_reviewed_policy(app: Any) -> None:
    served = served_routes(app)
    missing = sorted(set(served) - set(ROUTE_POLICY))
    stale = sorted(set(ROUTE_POLICY) - set(served))
    assert missing == [], f"add these routes to tests/security/routes.py: {missing}"
    assert stale == [], f"these routes no longer exist: {stale}"


def test_each_route_declares_exactly_its_reviewed_policy(app: Any) -> None:
    actual = {key: declared_policy(context) for key, context in served_routes(app).items()}
    differing = {k: (ROUTE_POLICY[k], v) for k, v in actual.items() if ROUTE_POLICY[k] != v}
    assert differing == {}


def test_every_write_route_needs_more_than_a_viewer_holds() -> None:
    viewer = ROLE_SCOPES[Role.viewer]
    for (method, path), policy in ROUTE_POLICY.items():
        if (method, path) in READ_ONLY_POSTS:
            continue
        if method in WRITE_METHODS and policy not in (PUBLIC, AUTHENTICATED):
            assert policy not in viewer, (method, path)


@pytest.fixture(scope="module")
def scoped_routes() -> list[tuple[str, str, str]]:
    return sorted(
        (method, path, policy)
        for (method, path), policy in ROUTE_POLICY.items()
        if policy not in (PUBLIC, AUTHENTICATED)
    )


async def _call(client: httpx.AsyncClient, method: str, path: str, token: str) -> int:
    body = {} if method in {"POST", "PUT", "PATCH"} else None
    response = await client.request(method, concrete(path), json=body, headers=bearer(token))
    return response.status_code


class TestRoleMatrix:
    @pytest.fixture
    async def tenant(self, factory: Factory) -> TenantHandle:
        return await factory.tenant()

    @pytest.mark.parametrize("role", list(Role))
    async def test_each_role_is_refused_exactly_where_it_lacks_the_scope(
        self,
        raw_client: httpx.AsyncClient,
        factory: Factory,
        tenant: TenantHandle,
        scoped_routes: list[tuple[str, str, str]],
        role: Role,
    ) -> None:
        account = await factory.user(tenant.id, tenant.slug, role)
        token = (await login(raw_client, account))["access_token"]
        held = ROLE_SCOPES[role]
        wrong = []
        for method, path, scope in scoped_routes:
            status = await _call(raw_client, method, path, token)
            refused = status == 403
            if refused == (scope in held) or status == 401:
                wrong.append((method, path, scope, status))
        assert wrong == []

    async def test_api_keys_without_the_scope_are_refused_and_with_it_let_through(
        self,
        raw_client: httpx.AsyncClient,
        factory: Factory,
        tenant: TenantHandle,
        scoped_routes: list[tuple[str, str, str]],
    ) -> None:
        wrong = []
        for scope in sorted({s for _, _, s in scoped_routes} - {"platform:admin"}):
            everything_else = sorted(set(SCOPES) - {scope, "platform:admin"})
            without = await factory.key(tenant.id, everything_else)
            only = await factory.key(tenant.id, [scope])
            for method, path, needed in scoped_routes:
                if needed != scope:
                    continue
                if (status := await _call(raw_client, method, path, without)) != 403:
                    wrong.append(("without", method, path, status))
                if (status := await _call(raw_client, method, path, only)) in (401, 403):
                    wrong.append(("with", method, path, status))
        assert wrong == []

    async def test_no_credentials_is_401_everywhere_but_public_routes(
        self, raw_client: httpx.AsyncClient
    ) -> None:
        wrong = []
        for (method, path), policy in ROUTE_POLICY.items():
            if policy == PUBLIC:
                continue
            body = {} if method in {"POST", "PUT", "PATCH"} else None
            response = await raw_client.request(method, concrete(path), json=body)
            if response.status_code != 401:
                wrong.append((method, path, response.status_code))
        assert wrong == []
