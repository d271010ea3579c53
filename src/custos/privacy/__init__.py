"""Privacy: PII detection and operators, data subject requests, export and erasure.

`text_to_store` is the one entry point for free text at ingest (notes, feedback)."""

from custos.privacy.ingest import text_to_store

__all__ = ["text_to_store"]
