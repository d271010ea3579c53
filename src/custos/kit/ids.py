"""Opaque, prefixed, time-ordered identifiers (`cus_01JD…`).

The part after the prefix is a ULID: 48 bits of milliseconds then 80 random bits in Crockford
base32, so ids sort by creation time and keyset pagination on the id is stable.
"""

from __future__ import annotations

import os
import re
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ULID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
# Two characters per 10 bits: 13 look-ups encode the 130 bits of 26 characters.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_SHIFTS = tuple(range(120, -1, -10))


def _encode(value: int) -> str:
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def ulid() -> str:
    return _encode((int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big"))


def new_id(prefix: str) -> str:
    return f"{prefix}_{ulid()}"


def is_valid_id(value: str, prefix: str) -> bool:
    head, sep, tail = value.partition("_")
    return sep == "_" and head == prefix and bool(_ULID_RE.match(tail))


class IdRun:
    """Ids in increasing order (one random start, then +1 each), handed out in as many
    takes as needed, so rows written together keep their input order when sorted by id,
    as a bulk import needs."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        # The top random bit clear: a run of any realistic length cannot carry into the time.
        self.next = (int(time.time() * 1000) << 80) | (int.from_bytes(os.urandom(10), "big") >> 1)

    def take(self, count: int) -> list[str]:
        start, self.next = self.next, self.next + count
        ids: list[str] = []
        value, end = start, start + count
        while value < end:
            # Values that differ only in their last 10 bits share all but the last pair.
            block_end = min(end, (value | 1023) + 1)
            head = self.prefix + "_" + _encode(value)[:-2]
            ids.extend([head + _PAIRS[v & 1023] for v in range(value, block_end)])
            value = block_end
        return ids


def new_ids(prefix: str, count: int) -> list[str]:
    """`count` ids in increasing order: see IdRun."""
    return IdRun(prefix).take(count)
