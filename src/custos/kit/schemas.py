from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Schema(BaseModel):
    """API models: read from ORM objects, unknown input fields refused (never silently kept)."""

    model_config = ConfigDict(from_attributes=True, extra="forbid", str_strip_whitespace=True)
