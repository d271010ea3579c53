"""The per-tenant hash chain: each row's hash covers its content and the previous hash."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from custos.kit.time import as_utc
from custos.models import AuditLog

GENESIS = ""


# What a row's hash covers: everything but the hash itself.
HASHED = (
    "id",
    "tenant_id",
    "seq",
    "occurred_at",
    "actor_type",
    "actor_id",
    "action",
    "target_type",
    "target_id",
    "request_id",
    "ip",
    "user_agent",
    "changes",
    "prev_hash",
)


def row_hash(row: AuditLog) -> str:
    return values_hash({name: getattr(row, name) for name in HASHED})


def values_hash(values: Mapping[str, Any]) -> str:
    """The hash of a row given as a mapping holding at least the HASHED names."""
    content = {name: values[name] for name in HASHED}
    content["occurred_at"] = as_utc(values["occurred_at"]).isoformat(timespec="microseconds")
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()
