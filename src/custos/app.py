"""create_app(): routers, middleware, exception handlers, lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import iter_route_contexts

from custos import __version__
from custos.api import ROUTERS, UNLISTED_ROUTERS, UPLOAD_PATHS
from custos.auth.dependencies import route_policy
from custos.auth.scopes import SCOPES
from custos.config import Settings, get_settings
from custos.kit.errors import install_error_handlers
from custos.kit.middleware import RequestMiddleware
from custos.observability import configure_logging
from custos.runtime import Runtime, settled_process
from custos.worker.app import InProcessWorker, create_job_app

DESCRIPTION = """
Custos keeps customer records, feedback, consents and privacy requests for many tenants,
and pushes every change to the systems around it.

Authenticate with `Authorization: Bearer <token>`, where the token is an API key
(`cst_live_…`) or an access token from `POST /api/v1/auth/login` or `POST /api/v1/oauth/token`.
Errors are `application/problem+json` (RFC 9457) and carry the `request_id`.
"""


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)
    runtime = runtime or Runtime.build(settings)
    job_app = create_job_app(settings)
    worker = InProcessWorker(runtime, job_app) if settings.runs_jobs_in_process else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        if worker is not None:
            await worker.start()
        else:
            # Requests defer jobs (bulk operations) for the `custos worker` processes.
            await job_app.open_async()
        with settled_process(settings):
            try:
                yield
            finally:
                if worker is not None:
                    await worker.stop()
                else:
                    await job_app.close_async()
                await runtime.stop()

    app = FastAPI(
        title="Custos",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        swagger_ui_parameters={"persistAuthorization": True},
    )
    app.state.runtime = runtime
    app.state.job_app = job_app
    # Routes that take no credentials are limited per address (kit/routing.py).
    app.state.public_route_guard = runtime.traffic.public_route
    _document_security(app)
    for prefix, router in ROUTERS:
        app.include_router(router, prefix=prefix)
    for prefix, router in UNLISTED_ROUTERS:
        app.include_router(router, prefix=prefix, include_in_schema=False)
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "If-Match"],
            expose_headers=[
                "X-Request-ID",
                "ETag",
                "Retry-After",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
            ],
        )
    app.add_middleware(
        RequestMiddleware,
        max_body_bytes=settings.max_body_bytes,
        hsts=settings.environment == "production",
        upload_paths=UPLOAD_PATHS,
        max_upload_bytes=settings.bulk_max_upload_bytes,
        traffic=runtime.traffic,
    )
    return app


def _document_security(app: FastAPI) -> None:
    """Security schemes in the OpenAPI schema, from each route's declared policy: OAuth2 (so
    Swagger's Authorize button can sign in with a password), naming the scope the route
    needs, or a plain bearer API key or token."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["OAuth2"] = {
            "type": "oauth2",
            "flows": {"password": {"tokenUrl": "/api/v1/oauth/token", "scopes": SCOPES}},
        }
        schemes["APIKey"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (cst_live_…) or an access token",
        }
        paths = schema.get("paths", {})
        for context in iter_route_contexts(app.routes):
            policy = route_policy(context.dependant) if hasattr(context, "dependant") else None
            if policy is None or not policy.authenticated:
                continue
            for method in context.methods or ():
                operation = paths.get(context.path, {}).get(method.lower())
                if operation is not None:
                    operation["security"] = [{"OAuth2": list(policy.scopes)}, {"APIKey": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
