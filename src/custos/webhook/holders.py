"""Webhook attempts as a personal-data holder: a receiver's stored answer may echo the
event it was sent (the event itself is rewritten by the `events` holder)."""

from __future__ import annotations

import sqlalchemy as sa

from custos.models import WebhookAttempt
from custos.privacy.holders import Context, Erased, Holder, register
from custos.privacy.holders.builtin import mentions_any


class WebhookResponses(Holder):
    name = "webhook_attempts"
    order = 20

    async def export(self, ctx: Context) -> None:  # noqa: ARG002
        return None  # receivers' answers, not data about the person

    async def erase(self, ctx: Context) -> list[Erased]:
        cleared = await ctx.session.execute(
            sa.update(WebhookAttempt)
            .where(
                WebhookAttempt.tenant_id == ctx.subject.tenant_id,
                WebhookAttempt.response_body.is_not(None),
                mentions_any(WebhookAttempt.response_body, ctx.subject.like_patterns()),
            )
            .values(response_body=None)
            .execution_options(synchronize_session=False)
        )
        count = cleared.rowcount  # type: ignore[attr-defined]
        return [Erased(self.name, "scrubbed", count, ["response_body"], "receivers' answers")]


register(WebhookResponses())
