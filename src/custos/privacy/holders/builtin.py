"""The holders of every table Custos has today that can hold data about a person."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from custos.auth.cache import invalidate_after_commit
from custos.customer import service as customer_service
from custos.customer.schemas import Customer as CustomerOut
from custos.kit.time import utcnow
from custos.models import (
    AuditLog,
    Consent,
    Customer,
    CustomerMerge,
    CustomerNote,
    CustomerStatIncrement,
    Event,
    IdempotencyKey,
    PrivacyRequest,
    User,
)
from custos.privacy.holders.base import ERASED, Context, Erased, Holder, Mode, jsonable, register
from custos.worker.defer import defer

# Events written again to object storage per job.
REPUBLISH_CHUNK = 500


def mentions_any(column: Any, patterns: list[str]) -> sa.ColumnElement[bool]:
    """Text (or JSON as text) containing any of the patterns, ignoring case."""
    as_text = sa.func.lower(sa.cast(column, sa.Text))
    return sa.or_(*(as_text.contains(p.lower(), autoescape=True) for p in patterns))


async def scrub_mentions(ctx: Context, column: Any) -> int:
    """Rewrite, in the subject's tenant, every value of a text column (an ORM attribute)
    that mentions the subject, with their identifiers replaced; returns how many changed."""
    model, name = column.class_, column.key
    rows = await ctx.session.scalars(
        sa.select(model).where(
            model.tenant_id == ctx.subject.tenant_id,
            mentions_any(column, ctx.subject.like_patterns()),
        )
    )
    changed = 0
    for row in rows:
        before = getattr(row, name)
        cleaned = ctx.subject.scrub(before)
        if cleaned != before:
            setattr(row, name, cleaned)
            changed += 1
    await ctx.session.flush()
    return changed


def _rows(objects: Any, columns: list[str]) -> list[dict[str, Any]]:
    return jsonable({c: getattr(o, c) for c in columns} for o in objects)


def _deep_scrub(value: Any, ctx: Context) -> Any:
    """A JSON value with the subject's records reduced to their id and every string that
    mentions them scrubbed."""
    subject = ctx.subject
    if isinstance(value, dict):
        if value.get("id") in subject.customer_ids:
            return {"id": value["id"], "erased": True}
        return {k: _deep_scrub(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_scrub(v, ctx) for v in value]
    if isinstance(value, str) and subject.mentions(value):
        return subject.scrub(value)
    return value


class Notes(Holder):
    name = "customer_notes"
    order = 10

    async def export(self, ctx: Context) -> list[dict[str, Any]]:
        rows = await ctx.session.scalars(
            sa.select(CustomerNote)
            .where(
                CustomerNote.tenant_id == ctx.subject.tenant_id,
                CustomerNote.customer_id.in_(ctx.subject.customer_ids),
            )
            .order_by(CustomerNote.id)
        )
        return _rows(rows, ["id", "customer_id", "author_type", "author_id", "body", "created_at"])

    async def erase(self, ctx: Context) -> list[Erased]:
        subject = ctx.subject
        own = await ctx.session.execute(
            sa.delete(CustomerNote).where(
                CustomerNote.tenant_id == subject.tenant_id,
                CustomerNote.customer_id.in_(subject.customer_ids),
            )
        )
        reports = [Erased(self.name, "deleted", own.rowcount, ["body"])]  # type: ignore[attr-defined]
        # Notes on other records that mention the person: the mention goes, the note stays.
        if subject.identifiers:
            scrubbed = await scrub_mentions(ctx, CustomerNote.body)
            reports.append(
                Erased(self.name, "scrubbed", scrubbed, ["body"], "mentions on other records")
            )
        return reports


class Merges(Holder):
    name = "customer_merges"
    order = 10

    def _about(self, ctx: Context) -> sa.ColumnElement[bool]:
        ids = ctx.subject.customer_ids
        return sa.and_(
            CustomerMerge.tenant_id == ctx.subject.tenant_id,
            sa.or_(CustomerMerge.primary_id.in_(ids), CustomerMerge.secondary_id.in_(ids)),
        )

    async def export(self, ctx: Context) -> list[dict[str, Any]]:
        rows = await ctx.session.scalars(sa.select(CustomerMerge).where(self._about(ctx)))
        # The snapshot holds both records as they were: the subject's own, exported with
        # the customer record; the merge itself is listed here.
        return _rows(
            rows, ["id", "primary_id", "secondary_id", "choices", "created_at", "undone_at"]
        )

    async def erase(self, ctx: Context) -> list[Erased]:
        deleted = await ctx.session.execute(sa.delete(CustomerMerge).where(self._about(ctx)))
        return [Erased(self.name, "deleted", deleted.rowcount, ["snapshot"])]  # type: ignore[attr-defined]


class StatIncrements(Holder):
    name = "customer_stat_increments"
    order = 10

    def _about(self, ctx: Context) -> sa.ColumnElement[bool]:
        return sa.and_(
            CustomerStatIncrement.tenant_id == ctx.subject.tenant_id,
            CustomerStatIncrement.customer_id.in_(ctx.subject.customer_ids),
        )

    async def export(self, ctx: Context) -> list[dict[str, Any]]:
        rows = await ctx.session.scalars(sa.select(CustomerStatIncrement).where(self._about(ctx)))
        return _rows(rows, ["increment_id", "customer_id", "applied_at"])

    async def erase(self, ctx: Context) -> list[Erased]:
        if ctx.mode is Mode.anonymize:
            return [Erased(self.name, "retained", 0, [], "kept with the anonymised record")]
        deleted = await ctx.session.execute(
            sa.delete(CustomerStatIncrement).where(self._about(ctx))
        )
        return [Erased(self.name, "deleted", deleted.rowcount, ["increment_id"])]  # type: ignore[attr-defined]


class IdempotencyKeys(Holder):
    """Stored responses of retried writes can hold a copy of the record."""

    name = "idempotency_keys"
    order = 10

    async def export(self, ctx: Context) -> None:
        return None  # copies of responses, not data of their own

    async def erase(self, ctx: Context) -> list[Erased]:
        deleted = await ctx.session.execute(
            sa.delete(IdempotencyKey).where(
                IdempotencyKey.tenant_id == ctx.subject.tenant_id,
                mentions_any(IdempotencyKey.response, ctx.subject.like_patterns()),
            )
        )
        return [Erased(self.name, "deleted", deleted.rowcount, ["response"])]  # type: ignore[attr-defined]


class Events(Holder):
    """Event payloads carry the record as it was; they are rewritten without it."""

    name = "events"
    order = 20

    def _about(self, ctx: Context) -> sa.ColumnElement[bool]:
        return sa.and_(
            Event.tenant_id == ctx.subject.tenant_id,
            sa.or_(
                Event.subject_id.in_(ctx.subject.customer_ids),
                mentions_any(Event.payload, ctx.subject.like_patterns()),
            ),
        )

    async def export(self, ctx: Context) -> list[dict[str, Any]]:
        rows = await ctx.session.scalars(
            sa.select(Event).where(self._about(ctx)).order_by(Event.seq)
        )
        return _rows(rows, ["id", "type", "occurred_at", "subject_type", "subject_id", "payload"])

    async def erase(self, ctx: Context) -> list[Erased]:
        rows = await ctx.session.scalars(sa.select(Event).where(self._about(ctx)))
        changed: list[str] = []
        for event in rows:
            cleaned = _deep_scrub(event.payload, ctx)
            if cleaned != event.payload:
                event.payload = cleaned
                changed.append(event.id)
        await ctx.session.flush()
        reports = [Erased(self.name, "scrubbed", len(changed), ["payload"])]
        if ctx.runtime.publisher is not None and changed:
            # The bucket's copies are written again from the rewritten rows, by a job queued
            # in this transaction: retried like any publishing until the bucket takes them.
            for start in range(0, len(changed), REPUBLISH_CHUNK):
                chunk = changed[start : start + REPUBLISH_CHUNK]
                defer(
                    ctx.session, "events.publish", tenant_id=ctx.subject.tenant_id, event_ids=chunk
                )
            reports.append(
                Erased(
                    self.name, "rewritten", len(changed), ["payload"], "copies in object storage"
                )
            )
        return reports


class AuditLogs(Holder):
    """The audit log is append-only and hash-chained: its rows are never rewritten. They hold
    no plain personal data to begin with (personal fields are masked when written, note
    texts are never recorded), so erasure leaves them, and checks that this still holds."""

    name = "audit_logs"
    order = 20

    def _about(self, ctx: Context) -> sa.ColumnElement[bool]:
        subject = ctx.subject
        conditions = [AuditLog.target_id.in_(subject.customer_ids)]
        if subject.user_ids:
            conditions.append(AuditLog.actor_id.in_(subject.user_ids))
            conditions.append(AuditLog.target_id.in_(subject.user_ids))
        return sa.and_(AuditLog.tenant_id == subject.tenant_id, sa.or_(*conditions))

    async def export(self, ctx: Context) -> list[dict[str, Any]]:
        rows = await ctx.session.scalars(
            sa.select(AuditLog).where(self._about(ctx)).order_by(AuditLog.occurred_at)
        )
        return _rows(
            rows,
            ["id", "occurred_at", "actor_type", "actor_id", "action", "target_type",
             "target_id", "ip", "user_agent", "changes"],
        )  # fmt: skip

    async def erase(self, ctx: Context) -> list[Erased]:
        about = await ctx.session.scalar(sa.select(sa.func.count()).where(self._about(ctx)))
        plain = 0
        if ctx.subject.identifiers:
            plain = (
                await ctx.session.scalar(
                    sa.select(sa.func.count()).where(
                        AuditLog.tenant_id == ctx.subject.tenant_id,
                        mentions_any(AuditLog.changes, sorted(ctx.subject.identifiers)),
                    )
                )
                or 0
            )
        note = "append-only and hash-chained; holds masked values only"
        if plain:
            note += f"; {plain} rows hold an identifier in plain form"
        return [Erased(self.name, "retained", about or 0, [], note)]


class Users(Holder):
    """Customer-role accounts linked to the person: deleted with their sessions."""

    name = "users"
    order = 30

    def _about(self, ctx: Context) -> sa.ColumnElement[bool]:
        return sa.and_(
            User.tenant_id == ctx.subject.tenant_id,
            User.customer_id.in_(ctx.subject.customer_ids),
        )

    async def export(self, ctx: Context) -> list[dict[str, Any]]:
        rows = await ctx.session.scalars(sa.select(User).where(self._about(ctx)))
        return _rows(rows, ["id", "email", "full_name", "role", "created_at", "last_login_at"])

    async def erase(self, ctx: Context) -> list[Erased]:
        users = list(await ctx.session.scalars(sa.select(User).where(self._about(ctx))))
        for user in users:
            await ctx.session.delete(user)
        await ctx.session.flush()
        if users:
            tags = {f"user:{u.id}" for u in users}
            invalidate_after_commit(ctx.runtime.credentials, ctx.session, tags)
        return [Erased(self.name, "deleted", len(users), ["email", "full_name", "password_hash"])]


class Consents(Holder):
    name = "consents"
    order = 30

    def _about(self, ctx: Context) -> sa.ColumnElement[bool]:
        return sa.and_(
            Consent.tenant_id == ctx.subject.tenant_id,
            Consent.customer_id.in_(ctx.subject.customer_ids),
        )

    async def export(self, ctx: Context) -> list[dict[str, Any]]:
        rows = await ctx.session.scalars(
            sa.select(Consent).where(self._about(ctx)).order_by(Consent.id)
        )
        return _rows(
            rows,
            ["id", "customer_id", "purpose", "granted", "source", "legal_basis",
             "policy_version", "actor_type", "actor_id", "occurred_at"],
        )  # fmt: skip

    async def erase(self, ctx: Context) -> list[Erased]:
        # Anonymised too: without contact data nobody is left to ask, so every grant ends.
        rows = await ctx.session.execute(sa.delete(Consent).where(self._about(ctx)))
        return [Erased(self.name, "deleted", rows.rowcount, ["source"])]  # type: ignore[attr-defined]


class PrivacyRequests(Holder):
    """The person's requests stay as the record that they were honoured; their free text
    goes."""

    name = "privacy_requests"
    order = 30

    def _about(self, ctx: Context) -> sa.ColumnElement[bool]:
        return sa.and_(
            PrivacyRequest.tenant_id == ctx.subject.tenant_id,
            PrivacyRequest.customer_id.in_(ctx.subject.customer_ids),
        )

    async def export(self, ctx: Context) -> list[dict[str, Any]]:
        rows = await ctx.session.scalars(
            sa.select(PrivacyRequest).where(self._about(ctx)).order_by(PrivacyRequest.id)
        )
        return _rows(
            rows,
            ["id", "type", "status", "method", "note", "scheduled_for", "completed_at",
             "history", "created_at"],
        )  # fmt: skip

    async def erase(self, ctx: Context) -> list[Erased]:
        cleared = await ctx.session.execute(
            sa.update(PrivacyRequest)
            .where(self._about(ctx), PrivacyRequest.note.is_not(None))
            .values(note=None)
            .execution_options(synchronize_session=False)
        )
        return [Erased(self.name, "anonymised", cleared.rowcount, ["note"])]  # type: ignore[attr-defined]


# Fields replaced when a record is anonymised; the rest (type, status, tags, statistics,
# dates) is kept for statistics.
ANONYMISED_FIELDS = [
    "full_name", "email", "email_key", "phone", "phone_e164", "external_id", "address",
    "company", "metadata", "search_text",
]  # fmt: skip


class Customers(Holder):
    name = "customers"
    order = 90

    async def export(self, ctx: Context) -> list[dict[str, Any]]:
        rows = await ctx.session.scalars(self._select(ctx).order_by(Customer.id))
        return [
            {
                **CustomerOut.model_validate(c).model_dump(mode="json"),
                "merged_into_id": c.merged_into_id,
                "anonymized_at": c.anonymized_at.isoformat() if c.anonymized_at else None,
            }
            for c in rows
        ]

    def _select(self, ctx: Context) -> sa.Select[tuple[Customer]]:
        return sa.select(Customer).where(
            Customer.tenant_id == ctx.subject.tenant_id,
            Customer.id.in_(ctx.subject.customer_ids),
        )

    async def erase(self, ctx: Context) -> list[Erased]:
        records = list(await ctx.session.scalars(self._select(ctx)))
        primary = [c for c in records if c.id == ctx.subject.customer_id]
        merged = [c for c in records if c.id != ctx.subject.customer_id]
        for record in merged if ctx.mode is Mode.anonymize else records:
            await ctx.session.delete(record)
        await ctx.session.flush()
        if ctx.mode is Mode.erase:
            return [Erased(self.name, "deleted", len(records), ANONYMISED_FIELDS)]
        for record in primary:
            _anonymise(record)
        await ctx.session.flush()
        reports = [Erased(self.name, "anonymised", len(primary), ANONYMISED_FIELDS)]
        if merged:
            reports.append(Erased(self.name, "deleted", len(merged), ANONYMISED_FIELDS))
        return reports


def _anonymise(customer: Customer) -> None:
    country = (customer.address or {}).get("country")
    customer.full_name = ERASED
    customer.email = customer.email_key = None
    customer.phone = customer.phone_e164 = None
    customer.external_id = None
    customer.address = {"country": country} if country else None
    customer.company = customer.company if customer.customer_type == "business" else None
    customer.attributes = {}
    customer_service.derive(customer)
    customer.anonymized_at = utcnow()
    customer.version += 1


for _holder in (
    Notes(), Merges(), StatIncrements(), IdempotencyKeys(), Events(), AuditLogs(), Users(),
    Consents(), PrivacyRequests(), Customers(),
):  # fmt: skip
    register(_holder)
