"""CustosRouter passes over routers whose prefix a path cannot lie under: the answers must be
exactly those of FastAPI's own APIRouter, for hits, misses, wrong methods and slashes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from custos.kit.routing import CustosRoute, CustosRouter

# Prefixes that are each other's substrings, one with a parameter, one empty.
PREFIXES = ("/customers", "/customers-archive", "/tenants/{tenant_id}/keys", "")


def _app(router_class: Any) -> FastAPI:
    app = FastAPI()
    for prefix in PREFIXES:
        if router_class is CustosRouter:
            router = CustosRouter(prefix=prefix)
        else:
            router = APIRouter(prefix=prefix, route_class=CustosRoute)
        name = prefix or "/root"

        @router.get("" if prefix else "/all", name=f"{name} list")
        async def listing(name: str = name) -> dict[str, str]:
            return {"route": f"{name} list"}

        @router.get("/special", name=f"{name} special")
        async def special(name: str = name) -> dict[str, str]:
            return {"route": f"{name} special"}

        @router.get("/{item_id}", name=f"{name} item")
        async def item(item_id: str, name: str = name) -> dict[str, str]:
            return {"route": f"{name} item", "item_id": item_id}

        @router.post("/{item_id}/notes", name=f"{name} note")
        async def note(item_id: str, name: str = name) -> dict[str, str]:
            return {"route": f"{name} note", "item_id": item_id}

        api = APIRouter(prefix="/api/v1") if router_class is APIRouter else None
        if api is not None:
            api.include_router(router)
            app.include_router(api)
        else:
            app.include_router(router, prefix="/api/v1")
    return app


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


REQUESTS = [
    ("GET", "/api/v1/customers"),
    ("GET", "/api/v1/customers/"),  # redirected to the route without the slash
    ("GET", "/api/v1/customers/special"),
    ("GET", "/api/v1/customers/cus_1"),
    ("POST", "/api/v1/customers/cus_1/notes"),
    ("DELETE", "/api/v1/customers/cus_1"),  # 405 with Allow
    ("GET", "/api/v1/customers-archive"),
    ("GET", "/api/v1/customers-archive/cus_2"),
    ("GET", "/api/v1/tenants/ten_1/keys"),
    ("GET", "/api/v1/tenants/ten_1/keys/key_1"),
    ("GET", "/api/v1/tenants/ten_1/other"),  # 404
    ("GET", "/api/v1/special"),  # the empty prefix's routes
    ("GET", "/api/v1/all"),
    ("GET", "/api/v1/x/y/z"),  # 404
    ("GET", "/customers/cus_1"),  # the prefix without the include's: 404
]


@pytest.mark.parametrize(("method", "path"), REQUESTS)
async def test_custos_router_answers_as_fastapis_own(method: str, path: str) -> None:
    answers = []
    for router_class in (APIRouter, CustosRouter):
        async with _client(_app(router_class)) as client:
            response = await client.request(method, path)
            answers.append(
                (
                    response.status_code,
                    response.headers.get("allow"),
                    response.headers.get("location"),
                    response.content,
                )
            )
    assert answers[0] == answers[1]
    assert answers[1][0] in (200, 307, 404, 405)


async def test_a_path_outside_the_prefix_is_refused_without_trying_the_routes() -> None:
    router = CustosRouter(prefix="/customers")
    tried: list[str] = []

    @router.get("/{item_id}")
    async def item(item_id: str) -> None:
        tried.append(item_id)

    app = FastAPI()
    app.include_router(router, prefix="/api/v1")
    original = router.routes[0].matches

    def counting(scope: Any) -> Any:
        tried.append(scope["path"])
        return original(scope)

    router.routes[0].matches = counting  # type: ignore[method-assign]
    async with _client(app) as client:
        assert (await client.get("/api/v1/feedback/fb_1")).status_code == 404
        assert tried == []
        assert (await client.get("/api/v1/customers/cus_1")).status_code == 200
        assert "/api/v1/customers/cus_1" in tried
