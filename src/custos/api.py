"""The API's table of contents: every router and where it is mounted."""

from __future__ import annotations

from custos.api_key.endpoints import admin_router as admin_api_key_router
from custos.api_key.endpoints import router as api_key_router
from custos.audit.endpoints import router as audit_router
from custos.auth.endpoints import oauth_router
from custos.auth.endpoints import router as auth_router
from custos.bulk.endpoints import router as bulk_router
from custos.cache.endpoints import router as cache_router
from custos.consent.endpoints import router as consent_router
from custos.customer.endpoints import internal_router as internal_customer_router
from custos.customer.endpoints import router as customer_router
from custos.docs.endpoints import router as docs_router
from custos.event.endpoints import router as event_router
from custos.feedback.endpoints import router as feedback_router
from custos.health.endpoints import router as health_router
from custos.kit.routing import CustosRouter
from custos.privacy.endpoints import me_router as privacy_me_router
from custos.privacy.endpoints import router as privacy_router
from custos.rate_limit.endpoints import admin_router as rate_limit_admin_router
from custos.tenant.endpoints import router as tenant_router
from custos.usage.endpoints import admin_router as usage_admin_router
from custos.usage.endpoints import key_router as key_usage_router
from custos.usage.endpoints import router as usage_router
from custos.user.endpoints import router as user_router
from custos.webhook.endpoints import router as webhook_router

V1_PREFIX = "/api/v1"
ADMIN_PREFIX = "/api/admin"
# Routes that take files: their bodies may reach `bulk_max_upload_bytes`, not `max_body_bytes`.
UPLOAD_PATHS = (
    "/bulk/import",
    "/feedback/upload/json",
    "/feedback/upload/csv",
    "/feedback/upload/xlsx",
)

# (prefix, router) in dispatch order. Each router is included straight into the app, not
# through a router per prefix: FastAPI tries an included tree level by level, once to choose
# and once to dispatch, so every level of nesting costs each request (kit/routing.py).
ROUTERS: tuple[tuple[str, CustosRouter], ...] = (
    *(
        (V1_PREFIX, router)
        for router in (
            auth_router,
            oauth_router,
            user_router,
            api_key_router,
            key_usage_router,
            audit_router,
            customer_router,
            internal_customer_router,
            feedback_router,
            bulk_router,
            privacy_router,
            privacy_me_router,
            consent_router,
            usage_router,
            cache_router,
            event_router,
            webhook_router,
            docs_router,
        )
    ),
    *(
        (ADMIN_PREFIX, router)
        for router in (
            tenant_router,
            admin_api_key_router,
            rate_limit_admin_router,
            usage_admin_router,
        )
    ),
    ("", health_router),
)

# Seed-era clients call /api/customers…: the current version serves them, unlisted.
UNLISTED_ROUTERS: tuple[tuple[str, CustosRouter], ...] = (("/api", customer_router),)
