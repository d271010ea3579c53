"""Exception handlers: every error leaves as RFC 9457 problem+json with the request id."""

from __future__ import annotations

import json
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from custos.exceptions import CustosError, problem_type
from custos.kit.context import request_context

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
_STATUS_SLUGS = {
    400: ("bad-request", "Bad Request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not Found"),
    405: ("method-not-allowed", "Method Not Allowed"),
    406: ("not-acceptable", "Not Acceptable"),
    413: ("payload-too-large", "Payload Too Large"),
    415: ("unsupported-media-type", "Unsupported Media Type"),
    422: ("validation-error", "Unprocessable Content"),
    429: ("rate-limited", "Too Many Requests"),
}


INTERNAL_ERROR_DETAIL = "Something went wrong on our side; the request id identifies it in our logs"


def problem_content(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    instance: str,
    request_id: str | None,
    errors: list[dict[str, Any]] | None = None,
    extensions: dict[str, Any] | None = None,
) -> bytes:
    body: dict[str, Any] = {
        "type": problem_type(slug),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "request_id": request_id,
    }
    if errors:
        body["errors"] = errors
    if extensions:
        body.update(extensions)
    # ensure_ascii escapes lone surrogates instead of failing to encode them.
    return json.dumps(body, ensure_ascii=True, default=str).encode()


def problem(
    request: Request,
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
) -> Response:
    content = problem_content(
        status,
        slug,
        title,
        detail,
        # The path only: query strings may carry personal data.
        instance=request.url.path,
        request_id=request_context.get().request_id,
        errors=errors,
        extensions=extensions,
    )
    return Response(content, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # The offending input is never echoed back: it may be personal data or a secret.
    return [
        {"loc": list(err.get("loc", ())), "msg": _message(err), "type": err.get("type")}
        for err in exc.errors()
    ]


def _message(err: dict[str, Any]) -> str:
    message = str(err.get("msg", ""))
    reason = (err.get("ctx") or {}).get("error")
    if err.get("type") == "json_invalid" and reason:
        # A JSON parse error says why: the parser's reason names a position, not the input.
        return f"{message}: {reason}"
    return message


async def _custos_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CustosError)
    return problem(
        request,
        exc.status_code,
        exc.slug,
        exc.title,
        exc.detail,
        errors=exc.errors,
        headers=exc.headers,
        extensions=exc.extensions,
    )


async def _request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    return problem(
        request,
        422,
        "validation-error",
        "Unprocessable Content",
        f"The request is invalid ({len(errors)} problem{'s' if len(errors) != 1 else ''})",
        errors=errors,
    )


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    slug, title = _STATUS_SLUGS.get(exc.status_code, ("http-error", "HTTP Error"))
    detail = exc.detail if isinstance(exc.detail, str) else title
    headers = dict(exc.headers) if exc.headers else None
    return problem(request, exc.status_code, slug, title, detail, headers=headers)


async def _unhandled(request: Request, exc: Exception) -> Response:
    log.error("unhandled_error", error=type(exc).__name__, exc_info=exc)
    return problem(request, 500, "internal-error", "Internal Server Error", INTERNAL_ERROR_DETAIL)


async def _database_error(request: Request, exc: Exception) -> Response:
    # A lost connection (a database restart, a failover) is the server's state, not a bug:
    # the pool has dropped the connection, and the client may retry at once.
    if isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    ):
        log.warning("database_unavailable", error=type(exc.orig).__name__)
        return problem(
            request,
            503,
            "database-unavailable",
            "Service Unavailable",
            "The database connection was lost; retry the request",
            headers={"Retry-After": "1"},
        )
    if isinstance(exc, DataError) and _is_nul_refusal(exc):
        # The middleware refuses NUL in JSON bodies, paths and queries; this is for the
        # rest (a form field, say): the write was rolled back, and the client is told why.
        return problem(
            request,
            422,
            "validation-error",
            "Unprocessable Content",
            "The request holds the NUL character (U+0000), which Custos does not store",
        )
    return await _unhandled(request, exc)


def _is_nul_refusal(exc: DataError) -> bool:
    # psycopg refuses NUL in text parameters before sending; PostgreSQL refuses \u0000 in
    # JSON (SQLSTATE 22P05, untranslatable character).
    text = str(exc.orig)
    return "NUL" in text or getattr(exc.orig, "sqlstate", None) == "22P05"


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(CustosError, _custos_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(Exception, _unhandled)
