"""The PII detector: pure Python, offline, no model.

Structured types (email, phone, SSN, card, IP, IBAN) are found by pattern and confirmed by
checksum or parser; names and addresses by the context people write them in, and names also
by the tenant's own customer names. Overlapping findings are resolved to the best one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from custos.privacy.pii import addresses, names, patterns
from custos.privacy.pii.entities import Entity, PiiType, resolve_overlaps

__all__ = ["DEFAULT_MIN_SCORE", "Detector", "Entity", "PiiType", "name_candidates", "scan"]

DEFAULT_MIN_SCORE = 0.5
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
        structured: list[tuple[PiiType, Callable[[], Iterator[Entity]]]] = [
            (PiiType.email, lambda: patterns.emails(text)),
            (PiiType.iban, lambda: patterns.ibans(text)),
            (PiiType.credit_card, lambda: patterns.cards(text)),
            (PiiType.ssn, lambda: patterns.ssns(text)),
            (PiiType.ip_address, lambda: patterns.ip_addresses(text)),
        ]
        found = [e for kind, recognise in structured if kind in self.types for e in recognise()]
        rest: list[tuple[PiiType, Callable[[], Iterator[Entity]]]] = [
            # What is already a card, an IBAN or an address on the network is not parsed
            # again as a phone number.
            (PiiType.phone, lambda: patterns.phones(text, self.phone_region, taken, phone_floor)),
            (PiiType.address, lambda: addresses.addresses(text)),
            (PiiType.person, lambda: names.persons(text, known, floor)),
        ]
        taken = [(e.start, e.end) for e in found]
        found += [e for kind, recognise in rest if kind in self.types for e in recognise()]
        found = [e for e in found if e.score >= self.thresholds.get(e.type, self.min_score)]
        return resolve_overlaps(found)


def scan(
    text: str, known_names: Iterable[str] = (), *, min_score: float = DEFAULT_MIN_SCORE
) -> list[Entity]:
    return Detector(min_score=min_score).scan(text, known_names)
