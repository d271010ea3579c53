from __future__ import annotations

from pydantic import Field

from custos.kit.schemas import Schema


class CacheStats(Schema):
    backend: str = Field(description="`redis`, or `memory` on the embedded default")
    enabled: bool
    hits: int = Field(description="Reads answered from the cache, every process together")
    misses: int = Field(description="Reads that went to the database and filled the cache")
    hit_rate: float = Field(description="hits / (hits + misses); 0 before any read")
    ttl_seconds: dict[str, int] = Field(
        description="How long entries live", examples=[{"customer": 600, "customer_list": 300}]
    )
    keys: list[str] = Field(
        description="The keys DELETE /cache/{key} takes",
        examples=[["customer:<customer id>", "customers"]],
    )
