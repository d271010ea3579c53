"""Keyed hashing and secret generation. Secrets are stored only as keyed hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

_BASE62 = string.digits + string.ascii_letters


def derive_key(master: str, label: str) -> bytes:
    """One sub-key per purpose, so a leak of one derived key exposes nothing else."""
    return hmac.new(master.encode(), f"custos:{label}".encode(), hashlib.sha256).digest()


def keyed_hash(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def random_base62(length: int) -> str:
    return "".join(secrets.choice(_BASE62) for _ in range(length))


def base62_checksum(value: str, length: int = 6) -> str:
    """A short checksum so malformed or mistyped secrets are rejected without a lookup."""
    number = int.from_bytes(hashlib.sha256(value.encode()).digest()[:8], "big")
    chars = []
    for _ in range(length):
        number, rem = divmod(number, 62)
        chars.append(_BASE62[rem])
    return "".join(chars)
