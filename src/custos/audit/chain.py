"""The per-tenant hash chain: each row's hash covers its content and the previous hash."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from custos.kit.time import as_utc
from custos.models import AuditLog

GENESIS = ""


def row_hash(row: AuditLog) -> str:
    content: dict[str, Any] = {
        "id": row.id,
        "tenant_id": row.tenant_id,
        "seq": row.seq,
        "occurred_at": as_utc(row.occurred_at).isoformat(timespec="microseconds"),
        "actor_type": row.actor_type,
        "actor_id": row.actor_id,
        "action": row.action,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "request_id": row.request_id,
        "ip": row.ip,
        "user_agent": row.user_agent,
        "changes": row.changes,
        "prev_hash": row.prev_hash,
    }
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()
