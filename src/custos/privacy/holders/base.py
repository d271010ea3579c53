"""The registry of personal-data holders: every place Custos keeps data about a person.

Export and erasure walk the registry, so "every table" means every registered holder. A
feature that stores personal data registers one small class: `export` returns its rows
about the subject (or None when it keeps only copies not worth exporting), `erase` removes
or irreversibly anonymises them and says what it did (table, action, fields, count), with no
personal data in the report. Holders run in `order`; the customer record itself goes last,
because the others find what to erase through it.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncSession

from custos.runtime import Runtime

ERASED = "[erased]"


class Mode(StrEnum):
    erase = "erase"  # the person leaves: their records are deleted
    anonymize = "anonymize"  # the customer record stays, for statistics, without PII


@dataclass(frozen=True)
class Subject:
    """The person: their record, the records merged into it, the users linked to them, and
    the identifiers (emails, phones, names) to hunt for in free text and copies."""

    tenant_id: str
    customer_id: str
    customer_ids: tuple[str, ...]
    user_ids: tuple[str, ...] = ()
    identifiers: tuple[str, ...] = ()

    def like_patterns(self) -> list[str]:
        """What to look for in stored text and JSON: each identifier as written and as a
        JSON string escapes it (`M\\u00fcller`), and each record id."""
        patterns: set[str] = set(self.customer_ids)
        for value in self.identifiers:
            patterns.add(value)
            patterns.add(json.dumps(value)[1:-1])
        return sorted(p for p in patterns if len(p) >= 3)

    def scrub(self, text: str) -> str:
        for value in sorted(self.identifiers, key=len, reverse=True):
            if len(value) >= 3:
                text = re.sub(re.escape(value), ERASED, text, flags=re.IGNORECASE)
        return text

    def mentions(self, text: str) -> bool:
        lowered = text.lower()
        return any(len(v) >= 3 and v.lower() in lowered for v in self.identifiers)


@dataclass
class Erased:
    table: str
    action: str  # deleted, anonymised, scrubbed, retained
    count: int
    fields: list[str] = field(default_factory=list)
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "table": self.table,
            "action": self.action,
            "fields": sorted(self.fields),
            "count": self.count,
        }
        if self.note:
            report["note"] = self.note
        return report


@dataclass
class Context:
    session: AsyncSession
    runtime: Runtime
    subject: Subject
    mode: Mode = Mode.erase


class Holder(ABC):
    name: ClassVar[str]
    order: ClassVar[int] = 50

    @abstractmethod
    async def export(self, ctx: Context) -> list[dict[str, Any]] | None: ...

    @abstractmethod
    async def erase(self, ctx: Context) -> list[Erased]: ...


_REGISTRY: dict[str, Holder] = {}


def register(holder: Holder) -> Holder:
    if holder.name in _REGISTRY:
        raise ValueError(f"a personal-data holder named {holder.name!r} is registered already")
    _REGISTRY[holder.name] = holder
    return holder


def registered() -> list[Holder]:
    return sorted(_REGISTRY.values(), key=lambda h: (h.order, h.name))


def jsonable(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    def value(v: Any) -> Any:
        if hasattr(v, "isoformat"):
            return v.isoformat()
        if isinstance(v, (int, float, str, bool, dict, list)) or v is None:
            return v
        return str(v)

    return [{k: value(v) for k, v in row.items()} for row in rows]
