"""The route class every router uses: JSON bodies parsed with orjson.

orjson is faster than the standard library and refuses what must not get in: lone UTF-16
surrogates such as "\\ud800" (which later fail to encode and would become a 500) and
absurd nesting. Its errors subclass json.JSONDecodeError, which FastAPI turns into a 422.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute


class OrjsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class CustosRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            return await handler(OrjsonRequest(request.scope, request.receive))

        return route_handler
