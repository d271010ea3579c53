from __future__ import annotations

from functools import lru_cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from custos.config import Settings


@lru_cache
def password_hasher(profile: str) -> PasswordHash:
    if profile == "fast":
        return PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))
    return PasswordHash((Argon2Hasher(),))


class Passwords:
    def __init__(self, settings: Settings) -> None:
        self._hasher = password_hasher(settings.password_hash_profile)
        # Verifying against this when no user matches keeps the timing of "no such user"
        # and "wrong password" alike.
        self._dummy = self._hasher.hash("custos-timing-equaliser")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password: str, password_hash: str | None) -> bool:
        if password_hash is None:
            self._hasher.verify(password, self._dummy)
            return False
        try:
            return self._hasher.verify(password, password_hash)
        except Exception:  # a malformed stored hash must not become a 500
            return False
