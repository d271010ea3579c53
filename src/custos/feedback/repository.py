from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from custos.kit import pgcopy
from custos.models import Customer, Feedback, FeedbackBand

_FEEDBACK = cast(sa.Table, Feedback.__table__)
_COLUMNS = [c.name for c in _FEEDBACK.columns]
_QUOTED = ", ".join(f'"{c}"' for c in _COLUMNS)

_IN_CHUNK = 5000  # values per IN (...) list: under every driver's parameter limit
# Two comma-joined lists, split by the server: cheaper to send, and to read, than a
# document or 32,000 parameters.
_INSERT_BANDS = sa.text(
    "INSERT INTO feedback_bands (tenant_id, feedback_id, band)"
    " SELECT :tenant_id, u.feedback_id, u.band"
    " FROM unnest(string_to_array(:ids, ','), CAST(string_to_array(:bands, ',') AS bigint[]))"
    " AS u (feedback_id, band)"
)

_BAND_HITS = sa.text(
    "SELECT b.feedback_id, b.band"
    " FROM unnest(CAST(string_to_array(:keys, ',') AS bigint[])) AS k (band)"
    " JOIN feedback_bands AS b ON b.tenant_id = :tenant_id AND b.band = k.band"
)


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class FeedbackRepository:
    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id

    def _scoped(self) -> sa.Select[tuple[Feedback]]:
        return sa.select(Feedback).where(Feedback.tenant_id == self.tenant_id)

    async def get(self, feedback_id: str) -> Feedback | None:
        stmt = self._scoped().where(Feedback.id == feedback_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def for_customer(self, customer_id: str) -> list[Feedback]:
        """Everything one person said: what a data export or erasure of them covers."""
        stmt = self._scoped().where(Feedback.customer_id == customer_id).order_by(Feedback.id)
        return list((await self.session.execute(stmt)).scalars())

    async def live_customer_names(self, ids: Collection[str]) -> dict[str, str | None]:
        """Which of these customers exist (not deleted), with their names."""
        if not ids:
            return {}
        stmt = sa.select(Customer.id, Customer.full_name).where(
            Customer.tenant_id == self.tenant_id,
            Customer.id.in_(list(ids)),
            Customer.deleted_at.is_(None),
        )
        return dict((await self.session.execute(stmt)).tuples().all())

    async def band_hits(self, bands: Collection[int]) -> dict[str, list[int]]:
        """Which of these band keys each earlier item of the tenant has (any age: the
        window is applied to the rows)."""
        shared: dict[str, list[int]] = {}
        if not bands:
            return shared
        if self.session.get_bind().dialect.name == "postgresql":
            # Thousands of keys: joined in C and split by the server (the driver would write
            # an array value by value in Python), then one index probe per key, a plan that
            # holds when the statement is prepared and planned without the values.
            found = await self.session.execute(
                _BAND_HITS, {"tenant_id": self.tenant_id, "keys": ",".join(map(str, bands))}
            )
            for feedback_id, band in found.all():
                shared.setdefault(feedback_id, []).append(band)
            return shared
        by_band = sa.select(FeedbackBand.feedback_id, FeedbackBand.band).where(
            FeedbackBand.tenant_id == self.tenant_id
        )
        for values in self._lists(FeedbackBand.band, list(bands), sa.BigInteger):
            for feedback_id, band in (await self.session.execute(by_band.where(values))).all():
                shared.setdefault(feedback_id, []).append(band)
        return shared

    async def candidates(
        self, ids: Collection[str], hashes: Collection[str], since: datetime
    ) -> list[sa.Row[Any]]:
        """What duplicate detection compares against: the window's feedback among these
        ids (near: found by band keys) or with one of these content hashes (exact), most
        recent first. Hashes are not scoped to a customer (the caller checks it)."""
        columns = (
            Feedback.id,
            Feedback.customer_id,
            Feedback.content_hash,
            Feedback.sketch,
            Feedback.duplicate_of_id,
            Feedback.received_at,
        )
        in_window = (Feedback.tenant_id == self.tenant_id, Feedback.received_at >= since)
        # Two steps (band_hits, then this), each on one table's index: a join over a long
        # key list would depend on statistics a freshly written table does not have yet.
        found: dict[str, sa.Row[Any]] = {}
        for column, keys, kind in (
            (Feedback.id, list(ids), sa.String),
            (Feedback.content_hash, list(hashes), sa.String),
        ):
            for values in self._lists(column, keys, kind):
                stmt = sa.select(*columns).where(*in_window, values)
                found.update((row.id, row) for row in (await self.session.execute(stmt)).all())
        return sorted(found.values(), key=lambda row: row.received_at, reverse=True)

    def _lists(self, column: Any, values: list[Any], kind: Any) -> Iterator[sa.ColumnElement[bool]]:
        """`column` among `values`: one array parameter on PostgreSQL (a long IN list costs
        more to build than to run), IN lists of bounded length elsewhere."""
        if not values:
            return
        if self.session.get_bind().dialect.name == "postgresql":
            yield column == sa.any_(
                sa.cast(sa.bindparam(None, values, type_=ARRAY(kind)), ARRAY(kind))
            )
            return
        for start in range(0, len(values), _IN_CHUNK):
            yield column.in_(values[start : start + _IN_CHUNK])

    async def insert(self, rows: list[dict[str, Any]], shared: dict[str, Any]) -> None:
        """Insert new items (every column; `shared` holds the columns all rows have alike,
        formatted once on PostgreSQL, where the rows go in by COPY)."""
        if not rows:
            return
        if self.session.get_bind().dialect.name == "postgresql":
            line = pgcopy.Template(_COLUMNS, shared).line
            await pgcopy.insert_through_stage(
                self.session,
                stage="feedback_stage",
                definition="(LIKE feedback)",
                columns=_QUOTED,
                lines=[line(row) for row in rows],
                insert=(
                    "WITH staged AS (DELETE FROM feedback_stage RETURNING *)"
                    f" INSERT INTO feedback ({_QUOTED}) SELECT {_QUOTED} FROM staged"
                ),
            )
            return
        await self.session.execute(sa.insert(_FEEDBACK), rows)

    async def add_bands(self, rows: list[tuple[str, list[int]]]) -> None:
        """Index written items: (feedback id, its band keys)."""
        if not rows:
            return
        if self.session.get_bind().dialect.name == "postgresql":
            # An item's keys once each (the primary key), in id order: new rows go at the
            # primary key's end.
            ids: list[str] = []
            bands: list[str] = []
            for feedback_id, keys in rows:
                distinct = dict.fromkeys(keys)
                ids += [feedback_id] * len(distinct)
                bands += map(str, distinct)
            await self.session.execute(
                _INSERT_BANDS,
                {"tenant_id": self.tenant_id, "ids": ",".join(ids), "bands": ",".join(bands)},
            )
            return
        await self.session.execute(
            sa.insert(FeedbackBand),
            [
                {"tenant_id": self.tenant_id, "band": band, "feedback_id": feedback_id}
                for feedback_id, keys in rows
                for band in set(keys)
            ],
        )

    def list_statement(
        self,
        *,
        customer_id: str | None = None,
        feedback_type: str | None = None,
        status: str | None = None,
        source: str | None = None,
        sentiment: str | None = None,
        rating: int | None = None,
        min_rating: int | None = None,
        max_rating: int | None = None,
        received_after: datetime | None = None,
        received_before: datetime | None = None,
        tag: str | None = None,
        q: str | None = None,
        duplicates: bool | None = None,
    ) -> sa.Select[tuple[Feedback]]:
        stmt = self._scoped()
        for column, value in (
            (Feedback.customer_id, customer_id),
            (Feedback.feedback_type, feedback_type),
            (Feedback.status, status),
            (Feedback.source, source),
            (Feedback.sentiment_label, sentiment),
            (Feedback.rating, rating),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        if min_rating is not None:
            stmt = stmt.where(Feedback.rating >= min_rating)
        if max_rating is not None:
            stmt = stmt.where(Feedback.rating <= max_rating)
        if received_after is not None:
            stmt = stmt.where(Feedback.received_at >= received_after)
        if received_before is not None:
            stmt = stmt.where(Feedback.received_at < received_before)
        if duplicates is not None:
            present = Feedback.duplicate_kind.is_not(None)
            stmt = stmt.where(present if duplicates else sa.not_(present))
        if tag:
            stmt = stmt.where(self._has_tag(tag))
        for word in (q or "").split():
            pattern = _like(word)
            stmt = stmt.where(
                sa.or_(
                    sa.func.lower(Feedback.content).like(pattern, escape="\\"),
                    sa.func.lower(sa.func.coalesce(Feedback.subject, "")).like(
                        pattern, escape="\\"
                    ),
                )
            )
        return stmt

    def _has_tag(self, tag: str) -> sa.ColumnElement[bool]:
        if self.session.get_bind().dialect.name == "postgresql":
            return sa.type_coerce(Feedback.tags, JSONB).contains([tag])
        each = sa.func.json_each(Feedback.tags).table_valued("value")
        return sa.exists(sa.select(1).select_from(each).where(each.c.value == tag))

    async def stats(self, filtered: sa.Select[tuple[Feedback]], days: int) -> dict[str, Any]:
        base = filtered.subquery()

        async def grouped(column: str) -> dict[str, int]:
            col = base.c[column]
            rows = await self.session.execute(
                sa.select(col, sa.func.count()).group_by(col).order_by(col)
            )
            return {str(key): int(count) for key, count in rows.all()}

        totals = (
            await self.session.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.avg(base.c.rating),
                    sa.func.avg(base.c.sentiment_score),
                    sa.func.count(base.c.duplicate_kind),
                )
            )
        ).one()
        dialect = self.session.get_bind().dialect.name
        day = (
            sa.func.to_char(sa.func.date_trunc("day", base.c.received_at), "YYYY-MM-DD")
            if dialect == "postgresql"
            else sa.func.strftime("%Y-%m-%d", base.c.received_at)
        )
        daily_rows = await self.session.execute(
            sa.select(
                day.label("day"),
                sa.func.count(),
                sa.func.avg(base.c.sentiment_score),
                sa.func.avg(base.c.rating),
            )
            .group_by(day)
            .order_by(day.desc())
            .limit(days)
        )
        return {
            "total": int(totals[0]),
            "average_rating": _round(totals[1]),
            "average_sentiment": _round(totals[2]),
            "duplicates": int(totals[3]),
            "by_type": await grouped("feedback_type"),
            "by_status": await grouped("status"),
            "by_source": await grouped("source"),
            "sentiment": await grouped("sentiment_label"),
            "daily": [
                {
                    "day": str(r[0]),
                    "count": int(r[1]),
                    "average_sentiment": _round(r[2]),
                    "average_rating": _round(r[3]),
                }
                for r in reversed(daily_rows.all())
            ],
        }


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 4)
