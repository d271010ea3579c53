"""Phone numbers to E.164, with the tenant's default region and strictness."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import phonenumbers

DEFAULT_REGION = "US"


@dataclass(frozen=True, slots=True)
class PhonePolicy:
    region: str = DEFAULT_REGION
    strict: bool = False  # lenient by default: keep what was given, flag it

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> PhonePolicy:
        region = str(settings.get("phone_default_region") or DEFAULT_REGION).upper()
        return cls(region=region, strict=settings.get("phone_validation") == "strict")


# Per distinct value: phonenumbers costs tens of microseconds a number, and a bulk import
# asks for the same number twice (the strict check, then the row) or across rows.
@lru_cache(maxsize=32_768)
def to_e164(raw: str, region: str) -> str | None:
    """The E.164 form of a valid number, or None when it cannot be read as one."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
