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
from fastapi.routing import APIRoute

# A dependency that identifies the caller carries this attribute set to True
# (auth/dependencies.py: authenticate); a route without one in its tree is public.
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
