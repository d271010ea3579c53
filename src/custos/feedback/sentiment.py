"""Sentiment with VADER: its bundled lexicon, offline, and its own label thresholds."""

from __future__ import annotations

from functools import lru_cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

# VADER's documented thresholds on the compound score.
POSITIVE_AT = 0.05
NEGATIVE_AT = -0.05
# Longer texts are scored on their beginning: VADER's cost grows with the text, and the
# opening carries the verdict in feedback.
MAX_SCORED_CHARS = 5000


@lru_cache(maxsize=1)
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


def label_of(compound: float) -> str:
    if compound >= POSITIVE_AT:
        return "positive"
    if compound <= NEGATIVE_AT:
        return "negative"
    return "neutral"


def score(text: str) -> tuple[float, str]:
    """(compound score in [-1, 1], label)."""
    compound = float(_analyzer().polarity_scores(text[:MAX_SCORED_CHARS])["compound"])
    return compound, label_of(compound)
