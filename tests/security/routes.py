"""The reviewed access policy of every route. A route the app serves that is missing here,
or whose declared scope differs, fails tests/security/test_route_matrix.py."""

from __future__ import annotations

from typing import Any

from fastapi.routing import iter_route_contexts

from custos.auth.dependencies import route_policy

PUBLIC = "public"
AUTHENTICATED = "authenticated"  # any valid credential, no particular scope

ROUTE_POLICY: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/auth/login"): PUBLIC,
    ("POST", "/api/v1/auth/refresh"): PUBLIC,
    ("POST", "/api/v1/auth/logout"): AUTHENTICATED,
    ("POST", "/api/v1/auth/password"): AUTHENTICATED,
    ("GET", "/api/v1/auth/me"): AUTHENTICATED,
    ("POST", "/api/v1/oauth/token"): PUBLIC,
    ("GET", "/api/v1/users"): "users:read",
    ("POST", "/api/v1/users"): "users:write",
    ("GET", "/api/v1/users/{user_id}"): "users:read",
    ("PATCH", "/api/v1/users/{user_id}"): "users:write",
    ("DELETE", "/api/v1/users/{user_id}"): "users:write",
    ("GET", "/api/v1/api-keys"): "api_keys:read",
    ("POST", "/api/v1/api-keys"): "api_keys:write",
    ("GET", "/api/v1/api-keys/{key_id}"): "api_keys:read",
    ("PATCH", "/api/v1/api-keys/{key_id}"): "api_keys:write",
    ("DELETE", "/api/v1/api-keys/{key_id}"): "api_keys:write",
    ("POST", "/api/v1/api-keys/{key_id}/rotate"): "api_keys:write",
    ("GET", "/api/v1/audit"): "audit:read",
    ("GET", "/api/v1/audit/verify"): "audit:read",
    ("POST", "/api/v1/customers"): "customers:write",
    ("GET", "/api/v1/customers"): "customers:read",
    ("GET", "/api/v1/customers/{customer_id}"): "customers:read",
    ("PUT", "/api/v1/customers/{customer_id}"): "customers:write",
    ("PATCH", "/api/v1/customers/{customer_id}"): "customers:write",
    ("DELETE", "/api/v1/customers/{customer_id}"): "customers:write",
    ("POST", "/api/v1/customers/{customer_id}/restore"): "customers:write",
    ("GET", "/api/v1/customers/{customer_id}/notes"): "customers:read",
    ("POST", "/api/v1/customers/{customer_id}/notes"): "customers:write",
    ("DELETE", "/api/v1/customers/{customer_id}/notes/{note_id}"): "customers:write",
    ("GET", "/api/v1/customers/{customer_id}/timeline"): "customers:read",
    ("GET", "/api/v1/customers/{customer_id}/statistics"): "customers:read",
    ("GET", "/api/v1/customers/me"): "self:read",
    ("GET", "/api/v1/customers/analytics"): "customers:read",
    ("POST", "/api/v1/customers/batch"): "customers:write",
    ("GET", "/api/v1/customers/duplicates"): "customers:read",
    ("POST", "/api/v1/customers/merge"): "customers:write",
    ("GET", "/api/v1/customers/merges/{merge_id}"): "customers:read",
    ("POST", "/api/v1/customers/merges/{merge_id}/undo"): "customers:write",
    ("PATCH", "/api/v1/customers/me"): "self:write",
    ("PATCH", "/api/v1/internal/customers/{customer_id}/statistics"): "internal:write",
    ("POST", "/api/v1/internal/customers"): "internal:write",
    ("GET", "/api/v1/internal/customers/by-external-id/{external_id}"): "customers:read",
    ("POST", "/api/v1/feedback"): "feedback:write",
    ("GET", "/api/v1/feedback"): "feedback:read",
    ("POST", "/api/v1/feedback/batch"): "feedback:write",
    ("POST", "/api/v1/feedback/upload/json"): "feedback:write",
    ("POST", "/api/v1/feedback/upload/csv"): "feedback:write",
    ("POST", "/api/v1/feedback/upload/xlsx"): "feedback:write",
    ("GET", "/api/v1/feedback/stats"): "feedback:read",
    ("GET", "/api/v1/feedback/{feedback_id}"): "feedback:read",
    ("PATCH", "/api/v1/feedback/{feedback_id}"): "feedback:write",
    ("POST", "/api/v1/bulk/import"): "bulk:write",
    ("POST", "/api/v1/bulk/export"): "bulk:write",
    ("GET", "/api/v1/bulk/operations"): "bulk:read",
    ("GET", "/api/v1/bulk/operations/{operation_id}"): "bulk:read",
    ("GET", "/api/v1/bulk/operations/{operation_id}/errors"): "bulk:read",
    ("POST", "/api/v1/bulk/operations/{operation_id}/cancel"): "bulk:write",
    ("GET", "/api/v1/bulk/operations/{operation_id}/download"): "bulk:read",
    ("POST", "/api/v1/privacy/pii-scan"): "privacy:read",
    ("GET", "/api/v1/privacy/pii-scan"): "privacy:read",
    ("POST", "/api/v1/privacy/redact"): "privacy:read",
    ("POST", "/api/v1/privacy/reidentify"): "privacy:reidentify",
    ("POST", "/api/v1/privacy/requests"): "privacy:write",
    ("GET", "/api/v1/privacy/requests"): "privacy:read",
    ("GET", "/api/v1/privacy/requests/{request_id}"): "privacy:read",
    ("POST", "/api/v1/privacy/requests/{request_id}/transitions"): "privacy:write",
    ("POST", "/api/v1/privacy/erase/{customer_id}"): "privacy:erase",
    ("POST", "/api/v1/privacy/anonymize/{customer_id}"): "privacy:erase",
    ("GET", "/api/v1/privacy/export/{customer_id}"): "privacy:write",
    ("GET", "/api/v1/privacy/me/export"): "self:read",
    ("GET", "/api/v1/privacy/me/consents"): "self:read",
    ("POST", "/api/v1/privacy/me/consents"): "self:write",
    ("DELETE", "/api/v1/privacy/me/consents"): "self:write",
    ("GET", "/api/v1/privacy/me/requests"): "self:read",
    ("POST", "/api/v1/privacy/me/erasure"): "self:write",
    ("POST", "/api/v1/privacy/me/requests/{request_id}/cancel"): "self:write",
    ("POST", "/api/v1/privacy/consent"): "consents:write",
    ("DELETE", "/api/v1/privacy/consent"): "consents:write",
    ("GET", "/api/v1/privacy/consent"): "consents:read",
    ("GET", "/api/v1/privacy/consent/history"): "consents:read",
    ("GET", "/api/v1/api-keys/{key_id}/usage"): "api_keys:read",
    ("GET", "/api/v1/usage"): "usage:read",
    ("GET", "/api/v1/cache/stats"): "cache:admin",
    ("DELETE", "/api/v1/cache"): "cache:admin",
    ("DELETE", "/api/v1/cache/{key}"): "cache:admin",
    ("GET", "/api/v1/docs/scopes"): PUBLIC,
    ("GET", "/api/v1/docs/events"): PUBLIC,
    ("GET", "/api/v1/events"): "events:read",
    ("GET", "/api/v1/events/{event_id}"): "events:read",
    ("POST", "/api/v1/events/trigger"): "events:write",
    ("POST", "/api/v1/webhooks"): "webhooks:write",
    ("GET", "/api/v1/webhooks"): "webhooks:read",
    ("GET", "/api/v1/webhooks/{webhook_id}"): "webhooks:read",
    ("PATCH", "/api/v1/webhooks/{webhook_id}"): "webhooks:write",
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): "webhooks:write",
    ("POST", "/api/v1/webhooks/{webhook_id}/rotate-secret"): "webhooks:write",
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): "webhooks:read",
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}"): "webhooks:read",
    ("POST", "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry"): "webhooks:write",
    ("POST", "/api/v1/webhooks/{webhook_id}/replay"): "webhooks:write",
    ("POST", "/api/v1/webhooks/{webhook_id}/test"): "webhooks:write",
    ("GET", "/api/admin/tenants"): "platform:admin",
    ("POST", "/api/admin/tenants"): "platform:admin",
    ("GET", "/api/admin/tenants/{tenant_id}"): "platform:admin",
    ("PATCH", "/api/admin/tenants/{tenant_id}"): "platform:admin",
    ("GET", "/api/admin/tenants/{tenant_id}/api-keys"): "platform:admin",
    ("POST", "/api/admin/tenants/{tenant_id}/api-keys"): "platform:admin",
    ("GET", "/api/admin/tenants/{tenant_id}/rate-limits"): "platform:admin",
    ("PUT", "/api/admin/tenants/{tenant_id}/rate-limits"): "platform:admin",
    ("DELETE", "/api/admin/tenants/{tenant_id}/rate-limits"): "platform:admin",
    ("GET", "/api/admin/usage"): "platform:admin",
    ("GET", "/health"): PUBLIC,
    ("GET", "/ready"): PUBLIC,
    ("GET", "/health/detailed"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
}

# POSTs that change nothing: the text travels in the body so that it never reaches a URL.
# Reading scopes suffice for them.
READ_ONLY_POSTS = {
    ("POST", "/api/v1/privacy/pii-scan"),
    ("POST", "/api/v1/privacy/redact"),
}

# Unversioned paths kept for seed-era clients serve the current version, with its policy.
LEGACY_PREFIXES = {"/api/customers": "/api/v1/customers"}
ROUTE_POLICY.update(
    {
        (method, old + path[len(new) :]): policy
        for (method, path), policy in list(ROUTE_POLICY.items())
        for old, new in LEGACY_PREFIXES.items()
        if path.startswith(new)
    }
)

# Framework pages: the schema and its viewers.
FRAMEWORK_PATHS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def served_routes(app: Any) -> dict[tuple[str, str], Any]:
    routes = {}
    for context in iter_route_contexts(app.routes):
        if context.path in FRAMEWORK_PATHS:
            continue
        for method in context.methods or ():
            if method != "HEAD":
                routes[(method, context.path)] = context
    return routes


def declared_policy(context: Any) -> str:
    """What the route's dependencies actually demand."""
    policy = route_policy(context.dependant)
    if policy.scopes:
        assert len(policy.scopes) == 1, f"{context.path} declares several: {policy.scopes}"
        return policy.scopes[0]
    return AUTHENTICATED if policy.authenticated else PUBLIC


def concrete(path: str, values: dict[str, str] | None = None) -> str:
    """Fill path parameters: given values, else a well-formed id that matches nothing."""
    import re

    values = values or {}
    return re.sub(
        r"\{(\w+)\}", lambda m: values.get(m.group(1), "x_00000000000000000000000000"), path
    )
