"""GET /customers: one page of the list, and on PostgreSQL the default page (newest first,
keyset cursor) in one round trip.

The generic path (`CustomerRepository.list_statement`, the ORM) serves SQLite and the
sorted and offset pages. On PostgreSQL the newest-first page is the common case (and `?q=`
search the hot one): there the same filters, written as SQL, travel with the tenant
settings in one message (`Database.one_round_trip`), and rows become the API's JSON without
ORM objects. `tests/customer/test_lists.py` holds both paths equal, filter by filter.
"""

from __future__ import annotations

from typing import Any

import orjson

from custos.auth.principal import Principal
from custos.customer import search
from custos.customer.reads import COLUMNS, FIELDS
from custos.customer.repository import CustomerRepository, parse_sort, search_term
from custos.customer.schemas import Customer, CustomerListQuery, CustomerStatus
from custos.db import Database
from custos.exceptions import InvalidInput
from custos.kit.pagination import Page, decode_cursor, encode_cursor, keyset_page
from custos.models import Customer as CustomerModel

_PAGE = Page[Customer]


async def page(db: Database, actor: Principal, query: CustomerListQuery) -> bytes:
    """The page as the API shows it (JSON)."""
    status = query.status
    if query.is_active is not None:
        wanted = CustomerStatus.active if query.is_active else CustomerStatus.inactive
        if status is not None and status != wanted:
            return _json([], None)
        status = wanted
    if query.skip is not None and query.cursor is not None:
        raise InvalidInput("Use either `cursor` or `skip`, not both")
    if db.is_postgres and query.skip is None and query.sort is None:
        return await newest_first_in_one_round_trip(db, actor, query, status)
    return await with_orm(db, actor, query, status)


async def with_orm(
    db: Database, actor: Principal, query: CustomerListQuery, status: CustomerStatus | None
) -> bytes:
    async with db.transaction(tenant_id=actor.tenant_id, write=False) as session:
        stmt = CustomerRepository(session, actor.tenant_id).list_statement(
            status=status,
            customer_type=query.customer_type,
            company=query.company,
            created_after=query.created_after,
            created_before=query.created_before,
            updated_since=query.updated_since,
            include_deleted=query.include_deleted,
            tag=query.tag,
            q=query.q,
        )
        if query.skip is None and query.sort is None:
            items, next_cursor = await keyset_page(
                session, stmt, CustomerModel.id, limit=query.limit, cursor=query.cursor
            )
            return _json([Customer.model_validate(c) for c in items], next_cursor)
        # Offset pages: a custom order, or seed-era clients. The cursor carries the offset.
        order = parse_sort(query.sort) if query.sort else [CustomerModel.id.desc()]
        offset = query.skip if query.skip is not None else _offset(query.cursor)
        stmt = stmt.order_by(*order).offset(offset).limit(query.limit + 1)
        rows = (await session.execute(stmt)).scalars().all()
    more = len(rows) > query.limit
    return _json(
        [Customer.model_validate(c) for c in rows[: query.limit]],
        encode_cursor({"offset": offset + query.limit}) if more else None,
    )


def _json(items: list[Customer], next_cursor: str | None) -> bytes:
    return _PAGE.__pydantic_serializer__.to_json(_PAGE(items=items, next_cursor=next_cursor))


def _offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    offset = decode_cursor(cursor).get("offset")
    if not isinstance(offset, int) or offset < 0:
        raise InvalidInput("The cursor is not valid for a sorted list")
    return offset


def _like_pattern(word: str) -> str:
    """`%word%` with LIKE's wildcards taken literally (escape character `/`, as the ORM's
    `contains(..., autoescape=True)` writes it)."""
    escaped = word.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{escaped}%"


async def newest_first_in_one_round_trip(
    db: Database, actor: Principal, query: CustomerListQuery, status: CustomerStatus | None
) -> bytes:
    # Each filter as list_statement() and search.matches() write it for PostgreSQL.
    conditions = ["tenant_id = %s"]
    params: list[Any] = [actor.tenant_id]
    searched: str | None = None  # the words for the search index, if it serves
    if query.q:
        words = search_term(query.q).split()
        if any(len(w) >= search.MIN_INDEXED_LENGTH for w in words):
            searched = " ".join(words)  # the function takes every word, short ones too
        else:
            for word in words:
                conditions.append("search_text LIKE %s ESCAPE '/'")
                params.append(_like_pattern(word))
    # Without search the tag's index leads (below); with it the tag is one more filter.
    by_tag = query.tag if searched is None else None
    if query.tag and not by_tag:
        conditions.append("tags @> %s::jsonb")
        params.append(orjson.dumps([query.tag]).decode())
    if not query.include_deleted:
        conditions.append("deleted_at IS NULL")
    for column, value in (
        ("status", status),
        ("customer_type", query.customer_type),
    ):
        if value:
            conditions.append(f"{column} = %s")
            params.append(value.value)
    if query.company:
        conditions.append("lower(company) = %s")
        params.append(query.company.lower())
    for condition, when in (
        ("created_at >= %s", query.created_after),
        ("created_at < %s", query.created_before),
        ("updated_at >= %s", query.updated_since),
    ):
        if when:
            conditions.append(condition)
            params.append(when)
    before: list[Any] = []
    if query.cursor:
        last_id = decode_cursor(query.cursor).get("id")
        if not isinstance(last_id, str):
            raise InvalidInput("The cursor is not valid")
        before.append(last_id)
    where = " AND ".join(conditions)
    if by_tag:
        # The tag's records newest first from its index (migration e8b4d2f6a1c3), each
        # looked up and filtered until the page is full, as for search below: a rare tag
        # costs a few look-ups, not a walk through the tenant's records.
        statement = (
            "SELECT page.* FROM (SELECT customer_id FROM customer_tags"
            " WHERE tenant_id = %s AND tag = %s"
            + (" AND customer_id < %s" if before else "")
            + " ORDER BY customer_id DESC) AS tagged CROSS JOIN LATERAL"
            f" (SELECT {COLUMNS} FROM customers WHERE id = tagged.customer_id AND {where}"
            " LIMIT 1) AS page ORDER BY tagged.customer_id DESC LIMIT %s"
        )
        params = [actor.tenant_id, by_tag, *before, *params, query.limit + 1]
    elif searched is None:
        statement = (
            f"SELECT {COLUMNS} FROM customers WHERE {where}"
            + (" AND id < %s" if before else "")
            + " ORDER BY id DESC LIMIT %s"
        )
        params += [*before, query.limit + 1]
    else:
        # The matches newest first, each record looked up (and filtered) until the page is
        # full: a common word's thousands of matches cost a sort, not a look-up each. The
        # LIMIT 1 keeps the look-up a look-up: without it the planner may flatten it into a
        # join that reads and sorts the tenant's every record (seen with stale statistics).
        statement = (
            "SELECT page.* FROM (SELECT id FROM customer_search_ids(%s) AS found (id)"
            + (" WHERE id < %s" if before else "")
            + " ORDER BY id DESC) AS matches CROSS JOIN LATERAL"
            f" (SELECT {COLUMNS} FROM customers WHERE id = matches.id AND {where} LIMIT 1)"
            " AS page ORDER BY matches.id DESC LIMIT %s"
        )
        params = [searched, *before, *params, query.limit + 1]
    rows = await db.one_round_trip(actor.tenant_id, statement, params)
    items = [Customer.model_validate(dict(zip(FIELDS, row, strict=True))) for row in rows]
    if len(items) <= query.limit:
        return _json(items, None)
    items = items[: query.limit]
    return _json(items, encode_cursor({"id": items[-1].id}))
