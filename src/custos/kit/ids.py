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


def ulid() -> str:
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    return f"{prefix}_{ulid()}"


def is_valid_id(value: str, prefix: str) -> bool:
    head, sep, tail = value.partition("_")
    return sep == "_" and head == prefix and bool(_ULID_RE.match(tail))


def new_ids(prefix: str, count: int) -> list[str]:
    """`count` ids in increasing order (one random start, then +1 each), so rows written
    together keep their input order when sorted by id, as a bulk import needs."""
    value = (int(time.time() * 1000) << 80) | (int.from_bytes(os.urandom(10), "big") >> 1)
    ids = []
    for offset in range(count):
        number = value + offset
        chars = []
        for _ in range(26):
            chars.append(_ALPHABET[number & 31])
            number >>= 5
        ids.append(f"{prefix}_{''.join(reversed(chars))}")
    return ids
