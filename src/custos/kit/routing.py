"""The route class every router uses: JSON bodies parsed with orjson, and routes that take
no credentials announced to the app's public-route guard (rate limits per address).

orjson is faster than the standard library and refuses what must not get in: lone UTF-16
surrogates such as "\\ud800" (which later fail to encode and would become a 500) and
absurd nesting. Its errors subclass json.JSONDecodeError, which FastAPI turns into a 422.
The NUL character ("\\u0000") is refused the same way: PostgreSQL stores none in text or
JSON, and refusing it here keeps both backends' data alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIRouter
from starlette.routing import Match
from starlette.types import Scope

# A dependency that identifies the caller carries this attribute set to True
# (auth/dependencies.py: authenticate, and the scope checks that call it); a route without
# one in its tree is public.
IDENTIFIES_CALLER = "identifies_caller"


# A \u0000 escape not itself escaped: an even run of backslashes (pairs) before it.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
NUL_REFUSED = "the NUL character (U+0000) is not stored"


def nul_escape_at(document: bytes) -> int | None:
    """Where a JSON document first escapes the NUL character, if it does."""
    if b"\\u0000" not in document:
        return None
    found = _NUL_ESCAPE.search(document)
    return found.end() if found else None


class OrjsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            if (at := nul_escape_at(body)) is not None:
                raise json.JSONDecodeError(NUL_REFUSED, body.decode("utf-8", "replace"), at)
            self._json = orjson.loads(body)
        return self._json


def is_public(dependant: Dependant) -> bool:
    stack = [dependant]
    while stack:
        current = stack.pop()
        if getattr(current.call, IDENTIFIES_CALLER, False):
            return False
        stack.extend(current.dependencies)
    return True


class CustosRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        public = is_public(self.dependant)

        async def route_handler(request: Request) -> Response:
            if public:
                guard: Callable[[Request], Awaitable[None]] | None = getattr(
                    request.app.state, "public_route_guard", None
                )
                if guard is not None:
                    await guard(request)
            return await handler(OrjsonRequest(request.scope, request.receive))

        return route_handler


class CustosRouter(APIRouter):
    """An APIRouter of CustosRoutes that a request passes over at once when its path cannot
    lie under the router's prefix.

    FastAPI (0.16x) keeps included routers as a tree and, for every request, tries each
    route of each router in turn, twice (once to choose, once to dispatch): with Custos's
    140 routes that took about half of a small request's Python time. A route's full path
    is the include prefixes, then this prefix, then the route's own path (empty or starting
    with "/"), and it must match the whole request path; so a path holding neither
    `prefix + "/"` nor ending in `prefix` matches none of them, and the check is exact to
    skip on. A prefix with a parameter is checked up to its first one.
    """

    def __init__(self, *, prefix: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("route_class", CustosRoute)
        super().__init__(prefix=prefix, **kwargs)
        literal, brace, _ = prefix.partition("{")
        self._literal_prefix = literal
        self._prefix_is_literal = not brace

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        literal = self._literal_prefix
        if literal:
            path = scope["path"]  # the root path too, if any: still exact to skip on
            if self._prefix_is_literal:
                if not path.endswith(literal) and literal + "/" not in path:
                    return Match.NONE, {}
            elif literal not in path:
                return Match.NONE, {}
        return super().matches(scope)
