"""Finding records that are probably one person: shared mailbox, shared phone number, or a
similar name at the same company."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from difflib import SequenceMatcher

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from custos.models import Customer

_DOTLESS = {"gmail.com", "googlemail.com"}

# How much each kind of evidence says on its own; several combine as independent evidence.
EMAIL_SCORE = 0.95
PHONE_SCORE = 0.9
NAME_SCORE = 0.85
# Companies with more live records than this are not compared name by name: the pairs grow
# quadratically and a big customer's many employees are not duplicates of each other.
MAX_COMPANY_GROUP = 200
NAME_SIMILARITY = 0.85


def email_key(email: str) -> str:
    """The mailbox an address reaches: sub-addresses dropped, Gmail's dots ignored."""
    local, _, domain = email.lower().rpartition("@")
    local = local.split("+", 1)[0]
    if domain in _DOTLESS:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def name_key(name: str) -> str:
    """Case, accents, punctuation and word order ignored: `Doe, Jane` ~ `jane doe`."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    words = "".join(ch if ch.isalnum() else " " for ch in plain).split()
    return " ".join(sorted(words))


@dataclass
class Candidate:
    a: str
    b: str
    reasons: dict[str, float] = field(default_factory=dict)

    @property
    def score(self) -> float:
        unlikely = 1.0
        for weight in self.reasons.values():
            unlikely *= 1 - weight
        return round(1 - unlikely, 4)


async def find(
    session: AsyncSession, tenant_id: str, *, limit: int, min_score: float
) -> list[Candidate]:
    pairs: dict[tuple[str, str], Candidate] = {}

    def add(x: str, y: str, reason: str, weight: float) -> None:
        a, b = sorted((x, y))
        candidate = pairs.setdefault((a, b), Candidate(a, b))
        candidate.reasons[reason] = max(weight, candidate.reasons.get(reason, 0.0))

    live = sa.and_(Customer.tenant_id == tenant_id, Customer.deleted_at.is_(None))
    for column, reason, weight in (
        (Customer.email_key, "same_mailbox", EMAIL_SCORE),
        (Customer.phone_e164, "same_phone", PHONE_SCORE),
    ):
        left, right = sa.orm.aliased(Customer), sa.orm.aliased(Customer)
        stmt = (
            sa.select(left.id, right.id)
            .join(
                right,
                sa.and_(
                    getattr(right, column.key) == getattr(left, column.key), right.id > left.id
                ),
            )
            .where(
                left.tenant_id == tenant_id,
                right.tenant_id == tenant_id,
                left.deleted_at.is_(None),
                right.deleted_at.is_(None),
                getattr(left, column.key).is_not(None),
            )
            .limit(10_000)
        )
        for x, y in await session.execute(stmt):
            add(x, y, reason, weight)

    company = sa.func.lower(Customer.company)
    groups = (
        sa.select(company.label("company"))
        .where(live, Customer.company.is_not(None))
        .group_by(company)
        .having(sa.func.count().between(2, MAX_COMPANY_GROUP))
        .subquery()
    )
    rows = await session.execute(
        sa.select(company, Customer.id, Customer.full_name)
        .where(live, company.in_(sa.select(groups.c.company)))
        .order_by(company)
    )
    members: dict[str, list[tuple[str, str]]] = {}
    for group, customer_id, full_name in rows:
        members.setdefault(group, []).append((customer_id, name_key(full_name)))
    for people in members.values():
        for i, (x, x_name) in enumerate(people):
            for y, y_name in people[i + 1 :]:
                similarity = (
                    1.0 if x_name == y_name else SequenceMatcher(None, x_name, y_name).ratio()
                )
                if similarity >= NAME_SIMILARITY:
                    add(x, y, "similar_name_same_company", NAME_SCORE * similarity)

    found = [c for c in pairs.values() if c.score >= min_score]
    found.sort(key=lambda c: (-c.score, c.a, c.b))
    return found[:limit]
