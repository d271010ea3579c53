"""Cursor pagination on the time-ordered id: newest first, stable under inserts."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Annotated, Any, Generic, TypeVar

import orjson
import sqlalchemy as sa
from fastapi import Query
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from custos.exceptions import InvalidInput

MAX_LIMIT = 1000

T = TypeVar("T")
M = TypeVar("M")

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (at most 1000)")]
Cursor = Annotated[
    str | None,
    Query(max_length=512, description="`next_cursor` from the previous page"),
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(values: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        value = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        value = None
    if not isinstance(value, dict):
        raise InvalidInput(
            "The cursor is not valid",
            errors=[{"loc": ["query", "cursor"], "msg": "not a cursor from this API"}],
        )
    return value


async def keyset_page(
    session: AsyncSession,
    stmt: sa.Select[tuple[M]],
    id_column: InstrumentedAttribute[str],
    *,
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[M], str | None]:
    if cursor:
        last_id = decode_cursor(cursor).get("id")
        if not isinstance(last_id, str):
            raise InvalidInput("The cursor is not valid")
        stmt = stmt.where(id_column < last_id)
    rows = (await session.execute(stmt.order_by(id_column.desc()).limit(limit + 1))).scalars()
    items = list(rows)
    if len(items) <= limit:
        return items, None
    items = items[:limit]
    return items, encode_cursor({"id": getattr(items[-1], "id")})  # noqa: B009
