from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from custos.kit.schemas import Schema


class AuditEntry(Schema):
    id: str
    seq: int | None = Field(description="Place in the tenant's hash chain; null until sealed")
    occurred_at: datetime
    actor_type: str
    actor_id: str | None
    action: str
    target_type: str
    target_id: str | None
    request_id: str | None
    ip: str | None
    user_agent: str | None
    changes: dict[str, Any]
    hash: str | None


class ChainVerification(Schema):
    valid: bool
    checked: int
    head_seq: int
    first_broken_seq: int | None = None
    first_broken_id: str | None = None
    reason: str | None = None
