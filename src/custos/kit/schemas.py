from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class Schema(BaseModel):
    """API models: read from ORM objects, unknown input fields refused (never silently kept)."""

    model_config = ConfigDict(from_attributes=True, extra="forbid", str_strip_whitespace=True)


class ErasedRecord(Schema):
    """What is left of a record in a stored event after its person was erased: its id."""

    id: str
    erased: Literal[True]
