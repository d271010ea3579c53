"""Per-tenant keys for the privacy operators, derived from the secret key by purpose: one
tenant's pseudonyms cannot be reversed, or its hashes matched, with another tenant's keys."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sqlalchemy.ext.asyncio import AsyncSession

from custos.db import database_of
from custos.kit.crypto import derive_key


@dataclass(frozen=True)
class TenantKeys:
    master: str
    tenant_id: str

    def _key(self, purpose: str) -> bytes:
        return derive_key(self.master, f"privacy:{purpose}:{self.tenant_id}")

    @cached_property
    def hash(self) -> bytes:
        return self._key("hash")

    @cached_property
    def pseudonym(self) -> bytes:
        # AES-SIV takes a double-length key: 512 bits for AES-256-SIV.
        return self._key("pseudonym:mac") + self._key("pseudonym:ctr")

    @cached_property
    def encryption(self) -> bytes:
        return self._key("encrypt")

    @cached_property
    def anonymisation(self) -> bytes:
        return self._key("anonymise")


def keys_for(session: AsyncSession, tenant_id: str) -> TenantKeys:
    db = database_of(session)
    if db is None:
        raise RuntimeError("privacy keys need a session from Database.transaction()")
    return TenantKeys(db.settings.secret_key.get_secret_value(), tenant_id)
