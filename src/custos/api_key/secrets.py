"""API key format: `<prefix><32 base62 random><6 base62 checksum>`, e.g. `cst_live_…`.

The checksum lets us reject a mistyped or made-up key without a lookup, and lets secret
scanners recognise a real key. Only a keyed hash of the whole key is stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from custos.kit.crypto import base62_checksum, derive_key, keyed_hash, random_base62

RANDOM_LENGTH = 32
CHECKSUM_LENGTH = 6
DISPLAY_LENGTH = 4  # random characters kept after the prefix for display


@dataclass(frozen=True, slots=True)
class NewSecret:
    key: str
    key_hash: str
    display_prefix: str


class ApiKeySecrets:
    def __init__(self, master_secret: str, prefix: str) -> None:
        self._hash_key = derive_key(master_secret, "api-key")
        self.prefix = prefix

    def generate(self) -> NewSecret:
        body = random_base62(RANDOM_LENGTH)
        key = f"{self.prefix}{body}{base62_checksum(self.prefix + body, CHECKSUM_LENGTH)}"
        return NewSecret(
            key=key,
            key_hash=self.hash(key),
            display_prefix=key[: len(self.prefix) + DISPLAY_LENGTH],
        )

    def well_formed(self, key: str) -> bool:
        if not key.startswith(self.prefix):
            return False
        body = key[len(self.prefix) :]
        if len(body) != RANDOM_LENGTH + CHECKSUM_LENGTH:
            return False
        random_part, checksum = body[:RANDOM_LENGTH], body[RANDOM_LENGTH:]
        return base62_checksum(self.prefix + random_part, CHECKSUM_LENGTH) == checksum

    def hash(self, key: str) -> str:
        return keyed_hash(self._hash_key, key)
