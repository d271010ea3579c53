from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from custos.customer import search
from custos.exceptions import InvalidInput
from custos.models import Customer

_PHONE_LIKE = re.compile(r"^[\d\s().+\-]+$")


def search_term(q: str) -> str:
    """A query that looks like a phone number is matched on its digits alone."""
    q = q.strip().lower()
    if _PHONE_LIKE.match(q):
        only_digits = "".join(ch for ch in q if ch.isdigit())
        if len(only_digits) >= 4:
            return only_digits.lstrip("0") or only_digits
    return q


SORTABLE = {
    "created_at": Customer.created_at,
    "updated_at": Customer.updated_at,
    "full_name": Customer.full_name,
    "email": Customer.email,
    "company": Customer.company,
    "total_order_value": Customer.total_order_value,
    "order_count": Customer.order_count,
    "last_order_at": Customer.last_order_at,
}


def parse_sort(sort: str) -> list[sa.UnaryExpression[Any]]:
    """`full_name,-created_at` -> ORDER BY terms, the id last so the order is total."""
    terms = []
    for part in (p.strip() for p in sort.split(",")):
        name = part.removeprefix("-")
        column = SORTABLE.get(name)
        if column is None:
            raise InvalidInput(
                f"Cannot sort by {name!r}; sortable: {', '.join(sorted(SORTABLE))}",
                errors=[{"loc": ["query", "sort"], "msg": f"unknown field {name!r}"}],
            )
        terms.append(
            column.desc().nulls_last() if part.startswith("-") else column.asc().nulls_last()
        )
    return [*terms, Customer.id.desc()]


class CustomerRepository:
    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id

    def _scoped(self) -> sa.Select[tuple[Customer]]:
        return sa.select(Customer).where(Customer.tenant_id == self.tenant_id)

    async def get(self, customer_id: str, *, include_deleted: bool = False) -> Customer | None:
        stmt = self._scoped().where(Customer.id == customer_id)
        if not include_deleted:
            stmt = stmt.where(Customer.deleted_at.is_(None))
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def live_by_external_id(self, external_id: str) -> Customer | None:
        stmt = self._scoped().where(
            Customer.external_id == external_id, Customer.deleted_at.is_(None)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def live_email_owner(self, email: str) -> str | None:
        stmt = sa.select(Customer.id).where(
            Customer.tenant_id == self.tenant_id,
            Customer.email == email,
            Customer.deleted_at.is_(None),
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def external_id_owner(self, external_id: str) -> str | None:
        stmt = sa.select(Customer.id).where(
            Customer.tenant_id == self.tenant_id, Customer.external_id == external_id
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    def list_statement(
        self,
        *,
        status: str | None = None,
        customer_type: str | None = None,
        company: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        updated_since: datetime | None = None,
        include_deleted: bool = False,
        tag: str | None = None,
        q: str | None = None,
    ) -> sa.Select[tuple[Customer]]:
        stmt = self._scoped()
        if q:
            dialect = self.session.get_bind().dialect.name
            stmt = stmt.where(search.matches(search_term(q), dialect))
        if tag:
            stmt = stmt.where(self._has_tag(tag))
        if not include_deleted:
            stmt = stmt.where(Customer.deleted_at.is_(None))
        if status:
            stmt = stmt.where(Customer.status == status)
        if customer_type:
            stmt = stmt.where(Customer.customer_type == customer_type)
        if company:
            stmt = stmt.where(sa.func.lower(Customer.company) == company.lower())
        if created_after:
            stmt = stmt.where(Customer.created_at >= created_after)
        if created_before:
            stmt = stmt.where(Customer.created_at < created_before)
        if updated_since:
            stmt = stmt.where(Customer.updated_at >= updated_since)
        return stmt

    def _has_tag(self, tag: str) -> sa.ColumnElement[bool]:
        if self.session.get_bind().dialect.name == "postgresql":
            # JSONB containment (@>); the portable JSON type would compile to LIKE.
            return sa.type_coerce(Customer.tags, JSONB).contains([tag])
        each = sa.func.json_each(Customer.tags).table_valued("value")
        return sa.exists(sa.select(1).select_from(each).where(each.c.value == tag))
