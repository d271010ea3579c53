"""Masking for values that may be personal data, where a trace is useful but the value is not.

The full PII operators live in the privacy feature; this is the small, dependency-free part
that the audit log and logs need.
"""

from __future__ import annotations

from typing import Any

# Fields whose values are personal data wherever they appear.
PII_FIELDS = frozenset(
    {"email", "full_name", "name", "phone", "phone_e164", "address", "first_name", "last_name"}
)
SECRET_FIELDS = frozenset({"password", "password_hash", "secret", "key_hash", "token"})


def mask_email(value: str) -> str:
    local, at, domain = value.partition("@")
    if not at:
        return mask_text(value)
    return f"{local[:1]}***@{domain}"


def mask_text(value: str) -> str:
    if len(value) <= 2:
        return "***"
    return f"{value[:1]}***{value[-1:]}" if len(value) > 6 else f"{value[:1]}***"


def mask_field(field: str, value: Any) -> Any:
    if value is None:
        return None
    if field in SECRET_FIELDS:
        return "[secret]"
    if field in PII_FIELDS:
        if isinstance(value, str):
            return mask_email(value) if "email" in field else mask_text(value)
        return "[masked]"
    return value
