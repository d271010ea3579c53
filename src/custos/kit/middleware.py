"""One pure-ASGI middleware for what every request needs: request id, context for audit and
logs, the body size limit, security headers, metrics and the access log; and, through
TrafficHooks, rate limits (the global ceiling, and the headers of whichever limit is
tightest) and usage metering."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any, Protocol

import structlog
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from custos.exceptions import CustosError, InvalidInput, PayloadTooLarge
from custos.kit.context import RequestContext, request_context
from custos.kit.errors import INTERNAL_ERROR_DETAIL, PROBLEM_JSON, problem_content
from custos.observability import HTTP_DURATION, HTTP_REQUESTS

log = structlog.get_logger("custos.access")

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
_DOC_PATHS = ("/docs", "/redoc")
# PostgreSQL can store no NUL character: refused in the path and the query here, for
# every endpoint and on both backends alike (JSON bodies: kit/routing.py).


def _nul_refused(where: str) -> InvalidInput:
    return InvalidInput(
        f"The request's {where} holds the NUL character (U+0000), which Custos does not store",
        errors=[{"loc": [where], "msg": "the NUL character (U+0000) is not allowed"}],
    )


class TrafficHooks(Protocol):
    """Rate limiting and metering (rate_limit/gate.py), kept behind this seam."""

    async def admit(self, scope: Scope) -> tuple[Any, CustosError | None]: ...

    def response_headers(self, traffic: Any) -> list[tuple[bytes, bytes]]: ...

    def finish(
        self,
        traffic: Any,
        *,
        method: str,
        route: str,
        status: int,
        seconds: float,
        request_bytes: int,
        response_bytes: int,
    ) -> None: ...


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        hsts: bool = False,
        upload_paths: tuple[str, ...] = (),
        max_upload_bytes: int = 0,
        traffic: TrafficHooks | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # File uploads (paths ending so) may be larger; their endpoints bound them too.
        self.upload_paths = upload_paths
        self.max_upload_bytes = max(max_upload_bytes, max_body_bytes)
        self.hsts = hsts
        self.traffic = traffic

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = _headers(scope)
        incoming = headers.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        client = scope.get("client")
        request_context.set(
            RequestContext(
                request_id=request_id,
                ip=client[0] if client else None,
                user_agent=headers.get("user-agent"),
            )
        )
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        is_docs = scope["path"].startswith(_DOC_PATHS)
        exceeded = False
        replaced = False
        response_started = False
        seen = 0
        limit = (
            self.max_upload_bytes
            if self.upload_paths and scope["path"].endswith(self.upload_paths)
            else self.max_body_bytes
        )
        sent = 0
        traffic_state: Any = None

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise PayloadTooLarge()
            return message

        async def send_or_replace(message: Message) -> None:
            nonlocal status, replaced
            if exceeded:
                # The framework turns an error while reading the body into a generic 400;
                # whatever it sends, the client gets the 413 problem instead.
                if not replaced:
                    replaced = True
                    refusal = _too_large(limit, request_id, scope["path"])
                    await refusal(scope, receive, send_with_headers)
                return
            await send_with_headers(message)

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started, sent
            if message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            elif message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                raw = list(message.get("headers", []))
                present = {name.lower() for name, _ in raw}
                raw.append((b"x-request-id", request_id.encode()))
                raw.extend(h for h in _SECURITY_HEADERS if h[0] not in present)
                if not is_docs and _API_CSP[0] not in present:
                    raw.append(_API_CSP)
                if b"cache-control" not in present:
                    raw.append((b"cache-control", b"no-store"))
                if self.hsts:
                    raw.append((b"strict-transport-security", b"max-age=63072000"))
                if traffic_state is not None and self.traffic is not None:
                    raw.extend(self.traffic.response_headers(traffic_state))
                message["headers"] = raw
            await send(message)

        length = headers.get("content-length", "")
        try:
            refused = None
            if self.traffic is not None:
                traffic_state, refused = await self.traffic.admit(scope)
            if refused is None and (
                b"%00" in scope.get("query_string", b"") or "\x00" in scope["path"]
            ):
                refused = _nul_refused("query" if "\x00" not in scope["path"] else "path")
            if refused is not None:
                answer = _refusal(refused, request_id, scope["path"])
                await answer(scope, receive, send_with_headers)
            elif length and (not length.isdigit() or int(length) > limit):
                refusal = _too_large(limit, request_id, scope["path"])
                await refusal(scope, receive, send_with_headers)  # refused before reading
            else:
                await self.app(scope, limited_receive, send_or_replace)
        except Exception as exc:
            if response_started:
                raise
            # Answered here rather than by the framework's outermost handler, so the 500 too
            # carries the request id and the security headers. No internals leave.
            log.error("unhandled_error", error=type(exc).__name__, exc_info=exc)
            await _internal_error(request_id, scope["path"])(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            template = route_template(scope)
            method = scope["method"]
            labels = (method, template, str(status))
            HTTP_REQUESTS.labels(*labels).inc()
            HTTP_DURATION.labels(*labels).observe(elapsed)
            if traffic_state is not None and self.traffic is not None:
                declared = int(length) if length.isdigit() else 0
                self.traffic.finish(
                    traffic_state,
                    method=method,
                    route=template,
                    status=status,
                    seconds=elapsed,
                    request_bytes=max(seen, declared),
                    response_bytes=sent,
                )
            log.info(
                "request",
                method=method,
                route=template,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/api/v1/users/{user_id}`), never the raw path."""
    context = scope.get("fastapi", {}).get("effective_route_context")
    template = getattr(context, "path_format", None) or getattr(scope.get("route"), "path", None)
    return template or "<unmatched>"


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _problem(
    status: int, slug: str, title: str, detail: str, request_id: str, path: str
) -> ASGIApp:
    content = problem_content(status, slug, title, detail, instance=path, request_id=request_id)
    return Response(content, status_code=status, media_type=PROBLEM_JSON)


def _refusal(error: CustosError, request_id: str, path: str) -> ASGIApp:
    content = problem_content(
        error.status_code,
        error.slug,
        error.title,
        error.detail,
        instance=path,
        request_id=request_id,
        extensions=error.extensions,
    )
    return Response(
        content, status_code=error.status_code, media_type=PROBLEM_JSON, headers=error.headers
    )


def _too_large(limit: int, request_id: str, path: str) -> ASGIApp:
    detail = f"The request body is larger than {limit} bytes"
    return _problem(413, PayloadTooLarge.slug, PayloadTooLarge.title, detail, request_id, path)


def _internal_error(request_id: str, path: str) -> ASGIApp:
    title = "Internal Server Error"
    return _problem(500, "internal-error", title, INTERNAL_ERROR_DETAIL, request_id, path)
