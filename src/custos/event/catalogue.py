"""The event catalogue: for each type, the JSON Schema of its whole message (generated from
the payload model) and an example message."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from custos.event.schemas import Event, EventTypeDoc
from custos.events import CATALOGUE, EventType

_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_REF = "#/$defs/{model}"
EXAMPLE_TENANT = "ten_01KAY1R0A2B4C6D8E0F2G4H6J8"


@cache
def _envelope_schema() -> dict[str, Any]:
    return Event.model_json_schema(mode="serialization", ref_template=_REF)


@cache
def message_schema(name: str) -> dict[str, Any]:
    event_type = CATALOGUE[name]
    schema = copy.deepcopy(_envelope_schema())
    payload = event_type.payload.model_json_schema(mode="serialization", ref_template=_REF)
    defs = {**schema.pop("$defs", {}), **payload.pop("$defs", {})}
    schema["properties"]["type"] = {"const": name, "type": "string", "title": "Type"}
    schema["properties"]["schema_version"] = {
        "const": event_type.schema_version,
        "type": "integer",
        "title": "Schema Version",
    }
    schema["properties"]["data"] = {**payload, "description": event_type.description}
    schema["title"] = name
    schema["$schema"] = _DIALECT
    if defs:
        schema["$defs"] = defs
    return schema


def example_message(event_type: EventType) -> dict[str, Any]:
    return {
        "id": "evt_01KAY2A1B3C5D7E9F1G3H5J7K9",
        "type": event_type.name,
        "seq": 4211,
        "tenant_id": EXAMPLE_TENANT,
        "timestamp": "2026-11-22T08:15:42.120Z",
        "schema_version": event_type.schema_version,
        "test": False,
        "actor": {"type": "api_key", "id": "key_01KAY1V2D8F5G3H7J9K2L4M6N8"},
        "subject": None,
        "request_id": "4f9c2b7e1d8a4c6b9e0f3a2d5c7b8e1f",
        "data": event_type.example.model_dump(mode="json"),
    }


def documented() -> list[EventTypeDoc]:
    return [
        EventTypeDoc(
            type=name,
            description=event_type.description,
            schema_version=event_type.schema_version,
            schema=message_schema(name),
            example=example_message(event_type),
        )
        for name, event_type in sorted(CATALOGUE.items())
    ]
