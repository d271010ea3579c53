"""Writing many rows to PostgreSQL with COPY: the text format, and a staging table.

Row-level security forbids COPY into the tenant tables, so rows are copied into a
temporary table of the connection's (emptied at commit) and moved on with one
`INSERT ... SELECT`, which the policies check. Building COPY's text in Python costs less
than binding thousands of parameters, and the server parses it faster than a VALUES list
or a JSON document.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

_SORT_MEMORY = "64MB"
_SPECIAL = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def text(value: str) -> str:
    if "\\" in value or "\n" in value or "\r" in value or "\t" in value:
        return value.translate(_SPECIAL)
    return value


def field(value: Any) -> str:
    """One value in COPY's text format; dicts and lists as JSON."""
    if value is None:
        return "\\N"
    if type(value) is str:
        return text(value)
    if type(value) is bool:
        return "t" if value else "f"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    try:
        encoded = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # what orjson refuses (an integer past 64 bits), the stdlib takes
        encoded = json.dumps(value, default=lambda v: v.isoformat())
    return text(encoded)


def line(values: Iterable[Any]) -> str:
    return "\t".join([field(v) for v in values]) + "\n"


class Template:
    """COPY lines for rows that share the values of some columns (a bulk import's tenant,
    timestamps, zero counters): those are formatted once, the others row by row."""

    def __init__(self, columns: Sequence[str], shared: Mapping[str, Any]) -> None:
        self.varying = tuple(c for c in columns if c not in shared)
        # The text before each varying column's value, then the line's end.
        self._pieces: list[str] = []
        current: list[str] = []
        for n, column in enumerate(columns):
            separator = "\t" if n else ""
            if column in shared:
                current.append(separator + field(shared[column]))
            else:
                current.append(separator)
                self._pieces.append("".join(current))
                current = []
        current.append("\n")
        self._pieces.append("".join(current))

    def line(self, row: Mapping[str, Any]) -> str:
        """The row's line; only its varying columns are read."""
        out = [""] * (2 * len(self._pieces) - 1)  # the pieces at even places, values between
        out[::2] = self._pieces
        out[1::2] = [field(row[column]) for column in self.varying]
        return "".join(out)


async def insert_through_stage(
    session: AsyncSession,
    *,
    stage: str,
    definition: str,
    columns: str,
    lines: list[str],
    insert: str,
) -> list[tuple[Any, ...]]:
    """COPY `lines` into the temporary table `stage` (made from `definition` on first
    use), then run `insert`, which must empty the stage (`WITH staged AS (DELETE FROM
    stage RETURNING ...)`) so a second call in the transaction starts clean; returns
    its rows, if any."""
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    async with driver.cursor() as cur:
        # A stage's rows sorted in memory (the events' insert orders them): at the default
        # 4 MB, 5,000 events of a bulk import spilled to disk, some 30 ms a chunk. For the
        # rest of this transaction only.
        await cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} {definition} ON COMMIT DELETE ROWS;"
            f" SET LOCAL work_mem = '{_SORT_MEMORY}'"
        )
        async with cur.copy(f"COPY {stage} ({columns}) FROM STDIN") as copy:
            await copy.write("".join(lines).encode())
        await cur.execute(insert)
        return list(await cur.fetchall()) if cur.description else []
