"""The PII detector: pure Python, offline, no model.

Structured types (email, phone, SSN, card, IP, IBAN) are found by pattern and confirmed by
checksum or parser; names and addresses by the context people write them in, and names also
by the tenant's own customer names. Overlapping findings are resolved to the best one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from custos.privacy.pii import addresses, names, patterns
from custos.privacy.pii.entities import Entity, PiiType, resolve_overlaps

__all__ = ["DEFAULT_MIN_SCORE", "Detector", "Entity", "PiiType", "name_candidates", "scan"]

DEFAULT_MIN_SCORE = 0.5
_DIGIT = re.compile(r"\d")
name_candidates = names.name_candidates


@dataclass(frozen=True, slots=True)
class Detector:
    min_score: float = DEFAULT_MIN_SCORE
    # Per-type thresholds override min_score.
    thresholds: dict[PiiType, float] = field(default_factory=dict)
    types: frozenset[PiiType] = frozenset(PiiType)
    phone_region: str = "US"
    # The tenant's customer names, lower-cased (see names.prepare); more can be given per scan.
    known_names: frozenset[str] = frozenset()

    def scan(self, text: str, known_names: Iterable[str] = ()) -> list[Entity]:
        known = self.known_names | names.prepare(known_names) if known_names else self.known_names
        floor = min([self.min_score, *self.thresholds.values()])
        phone_floor = self.thresholds.get(PiiType.phone, self.min_score)
        # Most types need a digit (and email an @): a text without one skips them.
        digits = _DIGIT.search(text) is not None
        types = self.types
        found: list[Entity] = []
        if "@" in text and PiiType.email in types:
            found += patterns.emails(text)
        if digits:
            if PiiType.iban in types:
                found += patterns.ibans(text)
            if PiiType.credit_card in types:
                found += patterns.cards(text)
            if PiiType.ssn in types:
                found += patterns.ssns(text)
            if PiiType.ip_address in types:
                found += patterns.ip_addresses(text)
            if PiiType.phone in types:
                # What is already a card, an IBAN or an IP address is not parsed again as a
                # phone number.
                taken = [(e.start, e.end) for e in found]
                found += patterns.phones(text, self.phone_region, taken, phone_floor)
            if PiiType.address in types:
                found += addresses.addresses(text)
        if PiiType.person in types:
            found += names.persons(text, known, floor)
        found = [e for e in found if e.score >= self.thresholds.get(e.type, self.min_score)]
        return resolve_overlaps(found)


def scan(
    text: str, known_names: Iterable[str] = (), *, min_score: float = DEFAULT_MIN_SCORE
) -> list[Entity]:
    return Detector(min_score=min_score).scan(text, known_names)
