"""Merging two records of one person, and undoing it.

The secondary is soft-deleted and points at the primary; its notes move to the primary,
tags and metadata are united, statistics added up, and each contact field comes from the
record the caller chose (by default the primary's, the secondary's filling its gaps).
Everything both records held before is kept on the merge, so undo puts it back exactly.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, get_args

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from custos import events
from custos.audit import service as audit
from custos.auth.principal import Principal
from custos.customer import service
from custos.customer.schemas import MAX_TAGS, MergeField, Side, check_metadata
from custos.customer.schemas import Customer as CustomerOut
from custos.exceptions import Conflict, InvalidInput, NotFound
from custos.kit.ids import new_id
from custos.kit.time import utcnow
from custos.models import Customer, CustomerMerge, CustomerNote

# Fields the caller may take from either record; metadata is united, not chosen.
CHOOSABLE = tuple(name for name in get_args(MergeField) if name != "metadata")

# Every column a merge may change, so undo can put each back; the id, tenant, version and
# updated_at are bookkeeping (undo is a change of its own: a new version, a new ETag).
_RESTORED = (
    *service.EDITABLE,
    "email_key",
    "search_text",
    "order_count",
    "total_order_value",
    "currency",
    "complaint_count",
    "last_order_at",
    "deleted_at",
    "merged_into_id",
)
_DATETIMES = {"last_order_at", "deleted_at"}


def _freeze(customer: Customer) -> dict[str, Any]:
    frozen: dict[str, Any] = {}
    for name in _RESTORED:
        value = getattr(customer, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = str(value)
        frozen[name] = value
    return frozen


def _thaw(customer: Customer, frozen: dict[str, Any]) -> None:
    for name in _RESTORED:
        value = frozen[name]
        if name in _DATETIMES and value is not None:
            value = datetime.fromisoformat(value)
        elif name == "total_order_value":
            value = Decimal(value)
        setattr(customer, name, value)


async def _locked(session: AsyncSession, tenant_id: str, ids: list[str]) -> dict[str, Customer]:
    # Locked in id order, so two merges over the same records cannot deadlock.
    stmt = (
        sa.select(Customer)
        .where(Customer.tenant_id == tenant_id, Customer.id.in_(ids))
        .order_by(Customer.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {c.id: c for c in (await session.execute(stmt)).scalars()}


def _source(primary: Customer, secondary: Customer, name: str, side: Side | None) -> Customer:
    if side is None:
        return primary if getattr(primary, name) not in (None, "", {}) else secondary
    return secondary if side == "secondary" else primary


async def merge(
    session: AsyncSession,
    actor: Principal,
    primary_id: str,
    secondary_id: str,
    choices: dict[str, Side],
) -> tuple[CustomerMerge, Customer]:
    if primary_id == secondary_id:
        raise InvalidInput(
            "A record cannot be merged into itself",
            errors=[{"loc": ["body", "secondary"], "msg": "same as primary"}],
        )
    records = await _locked(session, actor.tenant_id, [primary_id, secondary_id])
    primary, secondary = records.get(primary_id), records.get(secondary_id)
    if primary is None or primary.deleted_at is not None:
        raise NotFound("No such customer: primary")
    if secondary is None or secondary.deleted_at is not None:
        raise NotFound("No such customer: secondary")
    if primary.currency and secondary.currency and primary.currency != secondary.currency:
        raise Conflict(
            f"The records' orders are in different currencies ({primary.currency},"
            f" {secondary.currency}); their totals cannot be added"
        )
    before = {"primary": _freeze(primary), "secondary": _freeze(secondary)}
    audited_before = service.audited(primary)

    sources = {name: _source(primary, secondary, name, choices.get(name)) for name in CHOOSABLE}
    values = {name: getattr(source, name) for name, source in sources.items()}
    # The normalised number travels with the number it was read from.
    phone_e164 = sources["phone"].phone_e164
    tags = list(dict.fromkeys([*primary.tags, *secondary.tags]))
    if len(tags) > MAX_TAGS:
        raise InvalidInput(
            f"Together the records have more than {MAX_TAGS} tags; remove some first"
        )
    if choices.get("metadata") == "secondary":
        attributes = service.merge_patch(
            primary.attributes, secondary.attributes, null_deletes=False
        )
    else:
        attributes = service.merge_patch(
            secondary.attributes, primary.attributes, null_deletes=False
        )
    try:
        check_metadata(attributes)
    except ValueError as exc:
        raise InvalidInput(f"The merged metadata is too large: {exc}") from None

    # The secondary leaves first: its email and external_id are unique, and may move over.
    now = utcnow()
    secondary.deleted_at = now
    secondary.merged_into_id = primary.id
    if values["external_id"] is not None and values["external_id"] == secondary.external_id:
        secondary.external_id = None
    secondary.version += 1
    await session.flush()

    for name, value in values.items():
        setattr(primary, name, value)
    primary.phone_e164 = phone_e164
    primary.tags = tags
    primary.attributes = attributes
    primary.order_count += secondary.order_count
    primary.complaint_count += secondary.complaint_count
    primary.total_order_value += secondary.total_order_value
    primary.currency = primary.currency or secondary.currency
    if secondary.last_order_at and (
        primary.last_order_at is None or secondary.last_order_at > primary.last_order_at
    ):
        primary.last_order_at = secondary.last_order_at
    service.derive(primary)
    primary.version += 1
    await service.flush(session)

    moved = await session.execute(
        sa.update(CustomerNote)
        .where(CustomerNote.tenant_id == actor.tenant_id, CustomerNote.customer_id == secondary.id)
        .values(customer_id=primary.id)
        .returning(CustomerNote.id)
    )
    record = CustomerMerge(
        id=new_id("mrg"),
        tenant_id=actor.tenant_id,
        primary_id=primary.id,
        secondary_id=secondary.id,
        actor_type=actor.kind.value,
        actor_id=actor.id,
        choices=dict(choices),
        snapshot={
            **before,
            "moved_notes": sorted(moved.scalars()),
            "primary_version": primary.version,
            "secondary_version": secondary.version,
        },
    )
    session.add(record)
    await session.flush()
    changes = audit.changed_fields(audited_before, service.audited(primary))
    changes["merged"] = {"from": None, "to": secondary.id}
    audit.record(session, actor, "customer.merged", "customer", primary.id, changes=changes)
    service.emit(
        session,
        actor,
        events.CUSTOMER_MERGED,
        primary,
        merge_id=record.id,
        secondary_id=secondary.id,
        moved_notes=len(record.snapshot["moved_notes"]),
    )
    return record, primary


async def get(session: AsyncSession, actor: Principal, merge_id: str) -> CustomerMerge:
    record = await session.scalar(
        sa.select(CustomerMerge).where(
            CustomerMerge.tenant_id == actor.tenant_id, CustomerMerge.id == merge_id
        )
    )
    if record is None:
        raise NotFound("No such merge")
    return record


async def undo(
    session: AsyncSession, actor: Principal, merge_id: str
) -> tuple[CustomerMerge, Customer, Customer]:
    record = await get(session, actor, merge_id)
    if record.undone_at is not None:
        raise Conflict("This merge was already undone")
    records = await _locked(session, actor.tenant_id, [record.primary_id, record.secondary_id])
    primary, secondary = records[record.primary_id], records[record.secondary_id]
    snapshot = record.snapshot
    if primary.version != snapshot["primary_version"] or primary.deleted_at is not None:
        raise Conflict(
            "The primary record changed after the merge; undoing it would discard those"
            " changes. Edit the records by hand instead."
        )
    if secondary.version != snapshot["secondary_version"]:
        raise Conflict("The merged record changed after the merge; it cannot be undone")

    # The reverse order of the merge: the primary gives back the unique values first.
    _thaw(primary, snapshot["primary"])
    primary.version += 1
    await service.flush(session)
    _thaw(secondary, snapshot["secondary"])
    secondary.version += 1
    await service.flush(session)
    if snapshot["moved_notes"]:
        await session.execute(
            sa.update(CustomerNote)
            .where(
                CustomerNote.tenant_id == actor.tenant_id,
                CustomerNote.customer_id == primary.id,
                CustomerNote.id.in_(snapshot["moved_notes"]),
            )
            .values(customer_id=secondary.id)
        )
    record.undone_at = utcnow()
    record.undone_by = actor.id
    await session.flush()
    audit.record(
        session,
        actor,
        "customer.merge_undone",
        "customer",
        primary.id,
        changes={
            "merge_id": {"from": None, "to": record.id},
            "restored": {"from": None, "to": secondary.id},
        },
    )
    service.emit(
        session,
        actor,
        events.CUSTOMER_MERGE_UNDONE,
        primary,
        merge_id=record.id,
        secondary=CustomerOut.model_validate(secondary).model_dump(mode="json"),
    )
    return record, primary, secondary
