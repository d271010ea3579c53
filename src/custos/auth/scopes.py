"""Scopes are `resource:action`; roles are named sets of scopes."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    admin = "admin"
    developer = "developer"
    viewer = "viewer"
    customer = "customer"
    service = "service"


PLATFORM_ADMIN = "platform:admin"

# Every scope the API knows, with what it allows. Routes name these; nothing else exists.
SCOPES: dict[str, str] = {
    "customers:read": "Read customer records, notes, statistics and analytics",
    "customers:write": "Create and change customer records and notes",
    "customers:delete": "Permanently delete customer records",
    "feedback:read": "Read feedback and its statistics",
    "feedback:write": "Submit and triage feedback",
    "consents:read": "Read consent status and history",
    "consents:write": "Grant and revoke consents",
    "privacy:read": "Scan text for personal data; read data subject requests",
    "privacy:write": "Create and process data subject requests; export a person's data",
    "privacy:erase": "Erase or anonymise a person",
    "privacy:reidentify": "Reverse pseudonymised values",
    "bulk:read": "Read bulk operations and download exports",
    "bulk:write": "Start bulk imports and exports",
    "events:read": "Read the event log",
    "events:write": "Trigger test events",
    "webhooks:read": "Read webhook endpoints and deliveries",
    "webhooks:write": "Manage webhook endpoints, replay and retry deliveries",
    "automations:read": "Read automation rules and their executions",
    "automations:write": "Manage automation rules",
    "usage:read": "Read usage metering and analytics",
    "cache:admin": "Inspect and clear the tenant's read cache",
    "audit:read": "Read and verify the audit log",
    "users:read": "List the tenant's users",
    "users:write": "Create, change and deactivate users",
    "api_keys:read": "List API keys and their usage",
    "api_keys:write": "Create, change, rotate and revoke API keys",
    "internal:write": "Internal service API: upstream records and statistics increments",
    "self:read": "Read one's own customer record, consents and data export",
    "self:write": "Change one's own customer record and consents, request erasure",
    PLATFORM_ADMIN: "Operate the platform: tenants, their keys, platform usage",
}

ROLE_NAMES = frozenset(r.value for r in Role)

_READS = frozenset(s for s in SCOPES if s.endswith(":read") and not s.startswith("self:"))

ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.admin: frozenset(s for s in SCOPES if s != PLATFORM_ADMIN and not s.startswith("self:")),
    Role.developer: _READS
    | {
        "customers:write",
        "feedback:write",
        "consents:write",
        "privacy:write",
        "bulk:write",
        "events:write",
        "webhooks:write",
        "automations:write",
        "api_keys:write",
    },
    Role.viewer: _READS - {"users:read", "api_keys:read", "audit:read"},
    Role.customer: frozenset({"self:read", "self:write"}),
    Role.service: frozenset(
        {
            "customers:read",
            "customers:write",
            "feedback:read",
            "feedback:write",
            "consents:read",
            "consents:write",
            "events:read",
            "internal:write",
        }
    ),
}


def scopes_for(role: str, *, platform_admin: bool = False) -> frozenset[str]:
    scopes = ROLE_SCOPES.get(Role(role), frozenset()) if role in ROLE_NAMES else frozenset()
    return scopes | {PLATFORM_ADMIN} if platform_admin else scopes


def roles_holding(scope: str) -> list[str]:
    return [role.value for role, scopes in ROLE_SCOPES.items() if scope in scopes]
