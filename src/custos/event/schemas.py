from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from custos.kit.schemas import Schema


class TestEventPayload(Schema):
    message: str = Field(max_length=500)


class Actor(Schema):
    type: str = Field(description="user, api_key or system")
    id: str | None


class Subject(Schema):
    type: str
    id: str | None


class Event(Schema):
    """One event, exactly as webhooks receive it and as it is written to object storage."""

    id: str = Field(description="evt_…; also the `webhook-id` of its webhook messages")
    type: str
    seq: int = Field(
        description="Increases with every event of the tenant (with gaps): order by it"
    )
    tenant_id: str
    timestamp: datetime = Field(description="When the change happened (UTC)")
    schema_version: int = Field(description="The version of this type's payload schema")
    test: bool = Field(description="Made by a trigger or a webhook test; act on it only in tests")
    actor: Actor
    subject: Subject | None
    request_id: str | None = Field(description="The request that made the change, if any")
    data: dict[str, Any] = Field(description="The payload; its schema depends on `type`")


class EventTrigger(Schema):
    type: str = Field(
        "event.test",
        max_length=64,
        description="Any type of the catalogue; the event is marked `test: true`",
    )
    payload: dict[str, Any] | None = Field(
        None, description="Must match the type's schema; the catalogue's example when absent"
    )


class EventTypeDoc(Schema):
    type: str
    description: str
    schema_version: int
    schema_: dict[str, Any] = Field(
        alias="schema",
        serialization_alias="schema",
        description="JSON Schema (2020-12) of the whole message, `data` included",
    )
    example: dict[str, Any] = Field(description="A whole message of this type")
