"""What a feedback item's text alone decides: its sentiment and its fingerprint for
duplicate detection. Pure functions, so a call's items can be shared with helper processes
(kit/cpupool.py); this module is what those processes load."""

from __future__ import annotations

from dataclasses import dataclass

from custos.feedback import dedup, sentiment


@dataclass(slots=True)
class Fingerprint:
    content_hash: str
    sketch: tuple[int, ...]
    bands: list[int]


def fingerprint(content: str, customer_id: str | None) -> Fingerprint:
    normalised = dedup.normalise(content)
    sketch, bins = dedup.fingerprint(normalised)
    return Fingerprint(dedup.content_hash(normalised), sketch, dedup.band_keys(bins, customer_id))


def prime() -> None:
    """Load what analysing needs (VADER's lexicon), ahead of the first item."""
    sentiment.score("")


def analyse(item: tuple[str, str | None]) -> tuple[float, str, Fingerprint]:
    """(sentiment score, label, fingerprint) of one item's (content, customer id)."""
    content, customer_id = item
    score, label = sentiment.score(content)
    return score, label, fingerprint(content, customer_id)
