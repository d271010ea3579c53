"""Feedback as a personal-data holder: the person's own items, and mentions of them in
anyone's items."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from custos.feedback import dedup
from custos.feedback.repository import FeedbackRepository
from custos.feedback.service import fingerprint
from custos.models import Feedback, FeedbackBand
from custos.privacy.holders import ERASED, Context, Erased, Holder, Mode, register
from custos.privacy.holders.base import jsonable
from custos.privacy.holders.builtin import mentions_any

EXPORTED = [
    "id", "customer_id", "feedback_type", "subject", "content", "source", "rating", "status",
    "tags", "received_at", "sentiment_label", "created_at",
]  # fmt: skip


async def _rewrite(ctx: Context, item: Feedback, content: str, subject: str | None) -> None:
    """New text, with the hash, sketch and band keys derived from it: the old ones were
    derived from the personal text (a sketch and its bands are hashes of its shingles)."""
    printed = fingerprint(content, item.customer_id)
    item.content = content
    item.subject = subject
    item.content_hash = printed.content_hash
    item.sketch = dedup.encode(printed.sketch)
    item.version += 1
    await ctx.session.execute(sa.delete(FeedbackBand).where(FeedbackBand.feedback_id == item.id))
    await FeedbackRepository(ctx.session, item.tenant_id).add_bands([(item.id, printed.bands)])


class FeedbackHolder(Holder):
    name = "feedback"
    order = 10

    def _own(self, ctx: Context) -> sa.ColumnElement[bool]:
        return sa.and_(
            Feedback.tenant_id == ctx.subject.tenant_id,
            Feedback.customer_id.in_(ctx.subject.customer_ids),
        )

    async def export(self, ctx: Context) -> list[dict[str, Any]]:
        rows = await ctx.session.scalars(
            sa.select(Feedback).where(self._own(ctx)).order_by(Feedback.received_at)
        )
        return jsonable(
            {**{c: getattr(r, c) for c in EXPORTED}, "metadata": r.attributes} for r in rows
        )

    async def erase(self, ctx: Context) -> list[Erased]:
        subject = ctx.subject
        reports: list[Erased] = []
        if ctx.mode is Mode.erase:
            # Their band keys go with them (the foreign key cascades).
            deleted = await ctx.session.execute(sa.delete(Feedback).where(self._own(ctx)))
            count = deleted.rowcount  # type: ignore[attr-defined]
            reports.append(Erased(self.name, "deleted", count, ["content", "subject", "metadata"]))
        else:
            # The items stay for the statistics (type, rating, sentiment, status); what the
            # person wrote goes.
            own = list(await ctx.session.scalars(sa.select(Feedback).where(self._own(ctx))))
            for item in own:
                await _rewrite(ctx, item, ERASED, None)
                item.attributes = {}
            await ctx.session.flush()
            reports.append(
                Erased(self.name, "anonymised", len(own), ["content", "subject", "metadata"])
            )
        if subject.identifiers:
            patterns = subject.like_patterns()
            others = await ctx.session.scalars(
                sa.select(Feedback).where(
                    Feedback.tenant_id == subject.tenant_id,
                    sa.or_(
                        mentions_any(Feedback.content, patterns),
                        mentions_any(Feedback.subject, patterns),
                    ),
                )
            )
            scrubbed = 0
            for item in others:
                content = subject.scrub(item.content)
                title = subject.scrub(item.subject) if item.subject else item.subject
                if (content, title) != (item.content, item.subject):
                    await _rewrite(ctx, item, content, title)
                    scrubbed += 1
            await ctx.session.flush()
            reports.append(
                Erased(self.name, "scrubbed", scrubbed, ["content", "subject"], "mentions")
            )
        return reports


register(FeedbackHolder())
