"""Exact and near-duplicate detection for feedback text.

Exact: SHA-256 of the normalised text (case, accents' composition, punctuation and spacing
ignored). Near: a bottom-k MinHash sketch of the text's character 5-shingles; the share of
the k smallest hashes of the union found in both sketches estimates the Jaccard
similarity of the two shingle sets (Broder's bottom-k estimator). One 64-bit hash per
shingle, so a sketch costs one pass over the text. See docs/decisions/0051.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import re
import struct
import unicodedata

SHINGLE = 5
K = 64
# Longer texts are sketched on their beginning, which bounds the cost per item.
MAX_SKETCHED_CHARS = 4000

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return _NON_WORD.sub(" ", text).strip()


def content_hash(normalised: str) -> str:
    return hashlib.sha256(normalised.encode()).hexdigest()


def _hash64(shingle: str) -> int:
    return int.from_bytes(hashlib.blake2b(shingle.encode(), digest_size=8).digest(), "big")


def sketch(normalised: str) -> tuple[int, ...]:
    """The K smallest shingle hashes, ascending (fewer when the text has fewer shingles)."""
    text = normalised[:MAX_SKETCHED_CHARS]
    if len(text) <= SHINGLE:
        shingles = {text} if text else set()
    else:
        shingles = {text[i : i + SHINGLE] for i in range(len(text) - SHINGLE + 1)}
    return tuple(heapq.nsmallest(K, {_hash64(s) for s in shingles}))


def similarity(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Estimated Jaccard similarity of the shingle sets behind two sketches."""
    if not a or not b:
        return 1.0 if a == b else 0.0
    union = heapq.nsmallest(K, set(a) | set(b))
    both = set(a) & set(b)
    return sum(1 for h in union if h in both) / len(union)


def encode(values: tuple[int, ...]) -> str:
    return base64.b64encode(struct.pack(f">{len(values)}Q", *values)).decode()


def decode(text: str) -> tuple[int, ...]:
    raw = base64.b64decode(text)
    return struct.unpack(f">{len(raw) // 8}Q", raw)
