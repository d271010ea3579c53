"""Exact and near-duplicate detection for feedback text.

Exact: SHA-256 of the normalised text (case, accents' composition, punctuation and spacing
ignored). Near: a bottom-k MinHash sketch of the text's character 5-shingles; the share of
the k smallest hashes of the union found in both sketches estimates the Jaccard
similarity of the two shingle sets (Broder's bottom-k estimator). One 64-bit hash per
shingle (XXH3: a tenth of BLAKE2b's cost, and the sketch only needs a well-mixed hash,
not a cryptographic one), so a sketch costs one pass over the text. See
docs/decisions/0051 and 0063.

Finding candidates without comparing against every earlier item: the same hashes, binned
by value into BANDS x ROWS bins (one-permutation MinHash, empty bins filled from the next
full one), give BANDS band keys per item; each bin agrees between two texts with
probability ~ their Jaccard similarity J, so they share a key with probability
1 - (1 - J^ROWS)^BANDS (0.988 at J = 0.7, 0.9998 at 0.8; 0.0016 at 0.1). The keys are
stored (`feedback_bands`) and looked up by index. See docs/decisions/0060.

A candidate must share at least MIN_SHARED_BANDS keys with the item: P = 0.925 at
J = 0.7, 0.981 at 0.75, 0.9985 at 0.8, and unrelated texts that share one key by chance
(most of them) are never fetched. See docs/decisions/0063.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import re
import struct
import unicodedata

import xxhash

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


_xxh64 = xxhash.xxh3_64_intdigest


def _hash64(shingle: str) -> int:
    return _xxh64(shingle.encode())


def _hashes(normalised: str) -> set[int]:
    text = normalised[:MAX_SKETCHED_CHARS]
    if len(text) <= SHINGLE:
        return {_hash64(text)} if text else set()
    if text.isascii():
        # Slicing the bytes gives each shingle's encoding without encoding each.
        data = text.encode()
        return set(map(_xxh64, {data[i : i + SHINGLE] for i in range(len(data) - SHINGLE + 1)}))
    return set(map(_hash64, {text[i : i + SHINGLE] for i in range(len(text) - SHINGLE + 1)}))


def sketch(normalised: str) -> tuple[int, ...]:
    """The K smallest shingle hashes, ascending (fewer when the text has fewer shingles)."""
    return fingerprint(normalised)[0]


BANDS = 16
ROWS = 4
MIN_SHARED_BANDS = 2
_BINS = BANDS * ROWS


_MASK = (1 << 64) - 1
_MIX = 0x9E3779B97F4A7C15  # an odd 64-bit constant (the golden ratio's bits)


def _bins(ordered: list[int]) -> list[int]:
    """The smallest hash per bin (bin = hash mod the bin count) of the ascending hashes; an
    empty bin borrows the next full bin's value, mixed with the distance (densification:
    short texts leave bins empty, and empty-equals-empty would make all short texts look
    alike)."""
    if not ordered:
        return []
    # Written largest first, so each bin keeps its smallest.
    full = {h % _BINS: h for h in reversed(ordered)}
    if len(full) == _BINS:
        return [full[i] for i in range(_BINS)]
    bins = []
    for i in range(_BINS):
        value = full.get(i)
        if value is None:
            step = 1
            while (i + step) % _BINS not in full:
                step += 1
            value = full[(i + step) % _BINS] ^ (step * _MIX & _MASK)
        bins.append(value)
    return bins


def fingerprint(normalised: str) -> tuple[tuple[int, ...], list[int]]:
    """(sketch, bins) of the text, from one pass over its shingles and one sort."""
    ordered = sorted(_hashes(normalised))
    return tuple(ordered[:K]), _bins(ordered)


def band_keys(bins: list[int], customer_id: str | None) -> list[int]:
    """One signed 64-bit key per band, scoped to the customer (or to no customer): only the
    same person's earlier feedback shares them. A band takes every BANDS-th bin, not
    neighbours: a densified empty bin copies its neighbour, and neighbours in one band
    would agree together. The bin values are already uniform hashes, so multiply-xor
    mixing is enough to combine them."""
    if not bins:
        return []
    salt = _hash64("customer:" + (customer_id or ""))
    keys = []
    for band in range(BANDS):
        key = salt ^ (band * _MIX & _MASK)
        for value in bins[band::BANDS]:
            key = ((key ^ value) * _MIX) & _MASK
        keys.append(key - (1 << 64) if key >= 1 << 63 else key)
    return keys


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
