"""Where the read cache keeps entries: Redis, or this process's memory.

An entry is stamped with the tokens of the keys that guard it (the deployment's epoch, the
tenant's epoch, and the entry's generation: one customer's, or the tenant's list pages').
Invalidating deletes a guard key; the next read makes a fresh random token for it, so every
entry stamped before is dead for good. A reader takes the tokens in the same step as it
looks for the entry, before it reads the database, and stamps what it stores with them: if
a write commits and invalidates while the reader is between the database and the store,
the entry it stores is already dead. A guard key that expired or was evicted is remade
fresh too, so eviction and FLUSHALL can only cost hits, never serve old data.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

from redis.asyncio import Redis

# KEYS: the guard keys, then the entry. ARGV: a fresh token prefix, guard TTL (ms).
# Returns the stamp and the entry's payload when its stamp matches (else false).
_READ = """
local stamp = ''
for i = 1, #KEYS - 1 do
  local token = redis.call('GET', KEYS[i])
  if not token then
    token = ARGV[1] .. i
    redis.call('SET', KEYS[i], token, 'PX', ARGV[2])
  end
  stamp = stamp .. token .. '|'
end
local entry = redis.call('GET', KEYS[#KEYS])
if entry and string.sub(entry, 1, #stamp) == stamp then
  return {stamp, string.sub(entry, #stamp + 1)}
end
return {stamp, false}
"""


class Store(Protocol):
    backend: str

    async def read(self, guards: Sequence[str], entry: str) -> tuple[str, bytes | None]: ...

    async def write(
        self, guards: Sequence[str], entry: str, stamp: str, payload: bytes, ttl: int
    ) -> None: ...

    async def forget(self, keys: Sequence[str]) -> None: ...

    async def forget_prefix(self, prefix: str) -> int: ...


def _fresh() -> str:
    return secrets.token_hex(8)


class RedisStore:
    backend = "redis"

    def __init__(self, redis: Redis, guard_ttl_seconds: int) -> None:
        self._redis = redis
        self._guard_ttl_ms = guard_ttl_seconds * 1000
        self._read = redis.register_script(_READ)

    async def read(self, guards: Sequence[str], entry: str) -> tuple[str, bytes | None]:
        stamp, payload = await self._read(
            keys=[*guards, entry], args=[_fresh(), self._guard_ttl_ms]
        )
        return stamp.decode(), payload

    async def write(
        self, guards: Sequence[str], entry: str, stamp: str, payload: bytes, ttl: int
    ) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(entry, stamp.encode() + payload, px=ttl * 1000)
            for guard in guards:
                # Guards outlive the entries they stamp, or those entries would die early.
                pipe.pexpire(guard, self._guard_ttl_ms)
            await pipe.execute()

    async def forget(self, keys: Sequence[str]) -> None:
        if keys:
            await self._redis.delete(*keys)

    async def forget_prefix(self, prefix: str) -> int:
        """Delete every key under the prefix (SCAN, so Redis is never blocked); a rare
        operation: erasure wants entries gone, not merely unreachable."""
        pattern = (
            prefix.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?").replace("[", "\\[")
        )
        found: list[bytes] = []
        async for key in self._redis.scan_iter(match=pattern + "*", count=1000):
            found.append(key)
        for start in range(0, len(found), 500):
            await self._redis.unlink(*found[start : start + 500])
        return len(found)


class MemoryStore:
    """The embedded default: one process, so invalidation is local and complete."""

    backend = "memory"

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._tokens: OrderedDict[str, str] = OrderedDict()
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def read(self, guards: Sequence[str], entry: str) -> tuple[str, bytes | None]:
        stamp = "".join(self._token(guard) + "|" for guard in guards)
        found = self._entries.get(entry)
        if found is None:
            return stamp, None
        expires, value = found
        encoded = stamp.encode()
        if expires <= time.monotonic() or not value.startswith(encoded):
            del self._entries[entry]
            return stamp, None
        self._entries.move_to_end(entry)
        return stamp, value[len(encoded) :]

    async def write(
        self,
        guards: Sequence[str],  # noqa: ARG002 (tokens in memory do not expire)
        entry: str,
        stamp: str,
        payload: bytes,
        ttl: int,
    ) -> None:
        self._entries[entry] = (time.monotonic() + ttl, stamp.encode() + payload)
        self._entries.move_to_end(entry)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def forget(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._tokens.pop(key, None)
            self._entries.pop(key, None)

    async def forget_prefix(self, prefix: str) -> int:
        doomed = [key for key in self._entries if key.startswith(prefix)]
        for key in doomed:
            del self._entries[key]
        return len(doomed)

    def __len__(self) -> int:
        return len(self._entries)

    def _token(self, guard: str) -> str:
        token = self._tokens.get(guard)
        if token is None:
            token = self._tokens[guard] = _fresh()
            # Bounded like the entries; a token dropped is remade fresh, which only costs hits.
            while len(self._tokens) > 4 * self._max:
                self._tokens.popitem(last=False)
        else:
            self._tokens.move_to_end(guard)
        return token
