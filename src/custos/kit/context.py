"""What the current request is: set by the middleware, read by audit and logs."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None


_NO_REQUEST = RequestContext()  # frozen, so one shared default is safe
request_context: ContextVar[RequestContext] = ContextVar("request_context", default=_NO_REQUEST)
