"""What the detector finds: typed spans with a score and a short reason."""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class PiiType(StrEnum):
    email = "email"
    phone = "phone"
    ssn = "ssn"
    credit_card = "credit_card"
    ip_address = "ip_address"
    iban = "iban"
    person = "person"
    address = "address"


# When two findings overlap, the more specific type wins at equal score: a valid card number
# is not also a phone number, an IBAN's digits are not a card.
PRIORITY: dict[PiiType, int] = {
    PiiType.email: 8,
    PiiType.iban: 7,
    PiiType.credit_card: 6,
    PiiType.ssn: 5,
    PiiType.ip_address: 4,
    PiiType.phone: 3,
    PiiType.address: 2,
    PiiType.person: 1,
}


class Entity(NamedTuple):
    """Immutable; a named tuple because a scan makes many and a frozen dataclass is several
    times slower to create."""

    type: PiiType
    start: int
    end: int
    score: float
    reason: str

    def text(self, source: str) -> str:
        return source[self.start : self.end]


def resolve_overlaps(found: list[Entity]) -> list[Entity]:
    """Keep the best of overlapping findings (score, then type priority, then length)."""
    ranked = sorted(found, key=lambda e: (-e.score, -PRIORITY[e.type], -(e.end - e.start), e.start))
    kept: list[Entity] = []
    for entity in ranked:
        if all(entity.end <= k.start or entity.start >= k.end for k in kept):
            kept.append(entity)
    return sorted(kept, key=lambda e: (e.start, e.end))
