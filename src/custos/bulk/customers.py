"""Importing customers at bulk speed with the record's own rules.

Validation and normalisation are the customer feature's: `CustomerCreate` / `CustomerPatch`
(email, tags, metadata bounds, address), `phones.to_e164` with the tenant's region and
strictness, `service.search_text` and `duplicates.email_key`. What differs is the writing:
a chunk's new records go in with one COPY into a temporary table and one
`INSERT ... SELECT ... ON CONFLICT DO NOTHING` on PostgreSQL (an `INSERT OR IGNORE`
executemany on SQLite), its events in one INSERT, and no audit row per record.

Work is split so the runner can overlap it: `prepare` and `stage` are CPU only (validate,
then build the new rows, their API payloads and their COPY lines); `write` is mostly the
database's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any, cast

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from custos import events
from custos.auth.principal import Principal
from custos.bulk.rows import RowProblem, shape
from custos.bulk.schemas import ImportMode, MatchOn
from custos.customer.duplicates import email_key
from custos.customer.phones import PhonePolicy, to_e164
from custos.customer.schemas import CustomerCreate, CustomerPatch, check_metadata
from custos.customer.service import (
    EDITABLE,
    api_names,
    merge_patch,
    new_row,
    new_row_shared,
    search_text,
)
from custos.db import customers_changed
from custos.event import service as event_log
from custos.kit import pgcopy
from custos.kit.gcpause import gc_paused
from custos.kit.ids import IdRun, new_ids
from custos.kit.time import utcnow
from custos.models import Customer

_CUSTOMERS = cast(sa.Table, Customer.__table__)
_COLUMNS = [c.name for c in _CUSTOMERS.columns]
_STAGE = "bulk_customer_rows"
_IN_CHUNK = 5000  # ids per IN (...) list: under every driver's parameter limit


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    field: str | None
    reason: str


@dataclass(slots=True)
class Prepared:
    row: int
    item: dict[str, Any]
    key: tuple[str, str] | None  # (match field, value) for update and upsert
    create: CustomerCreate | None = None
    patch: CustomerPatch | None = None
    # Staged for a new record: its row, its event's payload; on PostgreSQL the row's COPY
    # line and the event, built.
    values: dict[str, Any] | None = None
    payload: dict[str, Any] | None = None
    copy_line: str | None = None
    event: event_log.Prebuilt | None = None

    @property
    def is_create(self) -> bool:
        return self.create is not None or self.copy_line is not None

    def slim(self) -> None:
        """Keep of a row staged for COPY only its line, its event and the keys a refusal is
        explained by. A chunk's rows wait while earlier chunks are written: each object
        they hold alive is walked by every collection of the collector meanwhile (some ten
        per row, measured: an eighth of an import's time in the collector)."""
        values = cast(dict[str, Any], self.values)
        self.values = {name: values[name] for name in ("id", "email", "external_id")}
        self.item, self.create, self.payload = {}, None, None


@dataclass
class ChunkResult:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[RowError] = field(default_factory=list)
    sample: list[dict[str, Any]] = field(default_factory=list)


def _first_error(exc: ValidationError) -> RowError:
    e = exc.errors()[0]
    loc = ".".join(str(p) for p in e["loc"]) or None
    return RowError(0, loc, str(e["msg"])[:300])


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def api_payload(row: dict[str, Any], times: dict[str, str | None] | None = None) -> dict[str, Any]:
    """A written row as the API shows it (the `Customer` schema's JSON), built directly:
    at bulk speed a model per row costs more than the rest of the row's work. `times` is
    `payload_times(row)` when many rows share their timestamps (a chunk's new records)."""
    if times is None:
        times = payload_times(row)
    return {
        "id": row["id"],
        "external_id": row["external_id"],
        "email": row["email"],
        "full_name": row["full_name"],
        "phone": row["phone"],
        "phone_e164": row["phone_e164"],
        "company": row["company"],
        "address": row["address"],
        "customer_type": row["customer_type"],
        "status": row["status"],
        "tags": row["tags"],
        "metadata": row["metadata"],
        "order_count": row["order_count"],
        "total_order_value": str(row["total_order_value"]),
        "currency": row["currency"],
        "complaint_count": row["complaint_count"],
        **times,
        "version": row["version"],
    }


def payload_times(row: Mapping[str, Any]) -> dict[str, str | None]:
    return {name: _iso(row[name]) for name in _TIMES}


_TIMES = ("last_order_at", "created_at", "updated_at", "deleted_at")


@dataclass(frozen=True, slots=True)
class _Staging:
    now: datetime
    shared: dict[str, Any]  # service.new_row_shared
    times: dict[str, str | None]  # payload_times(shared)
    customer_line: Callable[[Mapping[str, Any]], str]
    event: Callable[[str, str, dict[str, Any]], event_log.Prebuilt]


class CustomerImporter:
    def __init__(
        self,
        actor: Principal,
        policy: PhonePolicy,
        mode: ImportMode,
        match_on: MatchOn,
        mapping: dict[str, str],
        defaults: dict[str, Any],
        *,
        copy_lines: bool = False,
    ) -> None:
        self.actor = actor
        self.policy = policy
        self.mode = mode
        self.match_on = match_on
        self.mapping = mapping
        self.defaults = defaults
        self.copy_lines = copy_lines  # PostgreSQL: new rows go in by COPY
        # Keys taken by earlier rows of this file: a second row with one is a duplicate.
        self.seen: dict[str, dict[str, int]] = {"id": {}, "external_id": {}, "email": {}}
        self._staging: _Staging | None = None

    # -- per row, in Python --------------------------------------------------------------

    def _key(self, item: dict[str, Any]) -> tuple[str, str] | None:
        order = (
            ("id", "external_id", "email")
            if self.match_on == MatchOn.auto
            else (self.match_on.value,)
        )
        for name in order:
            value = item.get(name)
            if value:
                return name, value.lower() if name == "email" else value
        return None

    def remember(self, row: int, values: dict[str, Any]) -> None:
        """An earlier run committed this row: its keys are taken (used when resuming)."""
        try:
            item = shape(values, self.mapping, self.defaults)
        except RowProblem:
            return
        for name in self.seen:
            value = item.get(name)
            if isinstance(value, str) and value:
                self.seen[name].setdefault(value.lower() if name == "email" else value, row)

    def prepare(self, row: int, values: dict[str, Any]) -> Prepared | RowError:
        try:
            item = shape(values, self.mapping, self.defaults)
        except RowProblem as problem:
            return RowError(row, problem.field, problem.reason)
        key = None
        create = patch = None
        if self.mode == ImportMode.create:
            item.pop("id", None)
            try:
                create = CustomerCreate.model_validate(item)
            except ValidationError as exc:
                return _at(row, _first_error(exc))
        else:
            key = self._key(item)
            if key is None:
                wanted = (
                    "id, external_id or email" if self.match_on == MatchOn.auto else self.match_on
                )
                return RowError(row, self.match_on.value, f"a row needs its {wanted} to be matched")
            try:
                patch = CustomerPatch.model_validate({k: v for k, v in item.items() if k != "id"})
                check_metadata(patch.metadata)
            except ValidationError as exc:
                return _at(row, _first_error(exc))
            except ValueError as exc:
                return RowError(row, "metadata", str(exc))
        phone = (create or patch).phone  # type: ignore[union-attr]
        if phone and self.policy.strict and to_e164(phone, self.policy.region) is None:
            return RowError(row, "phone", "not a valid phone number")
        validated = create if create is not None else patch
        for name in self.seen:
            value = getattr(validated, name, None) if name != "id" else item.get("id")
            if value:
                first = self.seen[name].get(value)
                if first is not None and first != row:
                    return RowError(row, name, f"duplicate of row {first} in this file")
        for name in self.seen:
            value = getattr(validated, name, None) if name != "id" else item.get("id")
            if value:
                self.seen[name][value] = row
        return Prepared(row=row, item=item, key=key, create=create, patch=patch)

    def stage(self, prepared: list[Prepared], ids: IdRun, now: datetime) -> None:
        """Build what writing a new record takes, before its transaction: the runner stages
        a chunk while the previous one is being written."""
        creates = [p for p in prepared if p.create is not None and p.values is None]
        if not creates:
            return
        staging = self._staging_at(now)
        event_ids = new_ids("evt", len(creates)) if self.copy_lines else []
        for n, (p, customer_id) in enumerate(zip(creates, ids.take(len(creates)), strict=True)):
            assert p.create is not None
            p.values = new_row(
                self.actor, p.create, self.policy, customer_id, shared=staging.shared
            )
            p.payload = {"customer": api_payload(p.values, staging.times)}
            if self.copy_lines:
                p.copy_line = staging.customer_line(p.values)
                p.event = staging.event(event_ids[n], customer_id, p.payload)
                p.slim()

    def _staging_at(self, now: datetime) -> _Staging:
        """What the rows staged at `now` share, formatted once: a chunk is staged a slice at
        a time, all at its `now`."""
        if self._staging is None or self._staging.now != now:
            shared = new_row_shared(self.actor, now)
            self._staging = _Staging(
                now,
                shared,
                payload_times(shared),
                pgcopy.Template(_COLUMNS, shared).line,
                event_log.prebuilder(
                    self.actor, events.CUSTOMER_CREATED, occurred_at=now, subject_type="customer"
                ),
            )
        return self._staging

    # -- per chunk, in the chunk's transaction ---------------------------------------------

    async def write(
        self, session: AsyncSession, prepared: list[Prepared], *, dry_run: bool = False
    ) -> ChunkResult:
        result = ChunkResult()
        now = utcnow()
        creates: list[Prepared] = []
        updates: list[tuple[Prepared, Customer]] = []
        if self.mode == ImportMode.create:
            creates = [p for p in prepared if p.is_create]
        else:
            found = await self._matches(session, [p.key for p in prepared if p.key])
            for p in prepared:
                existing = found.get(p.key) if p.key else None
                if existing is not None:
                    updates.append((p, existing))
                elif self.mode == ImportMode.update:
                    assert p.key is not None
                    result.errors.append(
                        RowError(p.row, p.key[0], f"no customer has this {p.key[0]}")
                    )
                else:
                    try:
                        body = {k: v for k, v in p.item.items() if k != "id"}
                        p.create = CustomerCreate.model_validate(body)
                        creates.append(p)
                    except ValidationError as exc:
                        result.errors.append(_at(p.row, _first_error(exc)))
        with gc_paused():
            self.stage(creates, IdRun("cus"), now)  # what the runner has not staged already
        rows = [cast(dict[str, Any], p.values) for p in creates]
        if dry_run:  # a preview's importer has no COPY lines: its rows are whole
            assert not self.copy_lines
            result.created = len(rows)
            result.updated = len(updates)
            result.sample = [cast(dict[str, Any], p.payload)["customer"] for p in creates[:10]]
            return result
        if rows:
            inserted = await self._insert(session, creates)
            written: list[tuple[Prepared, dict[str, Any]]] = []
            lost: list[tuple[Prepared, dict[str, Any]]] = []
            for p, row in zip(creates, rows, strict=True):
                (written if row["id"] in inserted else lost).append((p, row))
            if self.copy_lines:  # the events were built while staging
                event_log.emit_prebuilt(
                    session, [cast(event_log.Prebuilt, p.event) for p, _ in written]
                )
            else:
                with gc_paused():
                    event_log.emit_many(
                        session,
                        self.actor,
                        events.CUSTOMER_CREATED,
                        [
                            (cast(dict[str, Any], p.payload), "customer", row["id"])
                            for p, row in written
                        ],
                    )
            result.created += len(inserted)
            result.errors.extend(await self._conflicts(session, lost))
        if updates:
            await self._update(session, updates, now, result)
        # Written with COPY and Core statements, which the read cache's ORM hooks do not see.
        customers_changed(session, self.actor.tenant_id, [c.id for _, c in updates])
        return result

    async def _matches(
        self, session: AsyncSession, keys: list[tuple[str, str]]
    ) -> dict[tuple[str, str], Customer]:
        by_field: dict[str, list[str]] = {}
        for name, value in keys:
            by_field.setdefault(name, []).append(value)
        found: dict[tuple[str, str], Customer] = {}
        for name, values in by_field.items():
            column = getattr(Customer, name)
            for start in range(0, len(values), _IN_CHUNK):
                stmt = sa.select(Customer).where(
                    Customer.tenant_id == self.actor.tenant_id,
                    Customer.deleted_at.is_(None),
                    column.in_(values[start : start + _IN_CHUNK]),
                )
                for customer in (await session.execute(stmt)).scalars():
                    found[(name, getattr(customer, name))] = customer
        return found

    async def _insert(self, session: AsyncSession, creates: list[Prepared]) -> set[str]:
        """Insert, skipping rows a unique index refuses; returns the ids written."""
        if self.copy_lines:  # PostgreSQL: the lines were built while staging
            return await _copy_insert(session, [cast(str, p.copy_line) for p in creates])
        rows = [cast(dict[str, Any], p.values) for p in creates]
        await session.execute(sa.insert(_CUSTOMERS).prefix_with("OR IGNORE"), rows)
        ids = [r["id"] for r in rows]
        written: set[str] = set()
        for start in range(0, len(ids), _IN_CHUNK):
            stmt = sa.select(Customer.id).where(
                Customer.tenant_id == self.actor.tenant_id,
                Customer.id.in_(ids[start : start + _IN_CHUNK]),
            )
            written.update((await session.execute(stmt)).scalars())
        return written

    async def _conflicts(
        self, session: AsyncSession, lost: list[tuple[Prepared, dict[str, Any]]]
    ) -> list[RowError]:
        """Why each refused row was refused: its email or external_id is another's."""
        if not lost:
            return []
        emails = [r["email"] for _, r in lost if r["email"]]
        externals = [r["external_id"] for _, r in lost if r["external_id"]]
        taken_emails = (
            set(
                (
                    await session.execute(
                        sa.select(Customer.email).where(
                            Customer.tenant_id == self.actor.tenant_id,
                            Customer.deleted_at.is_(None),
                            Customer.email.in_(emails),
                        )
                    )
                ).scalars()
            )
            if emails
            else set()
        )
        taken_external = (
            set(
                (
                    await session.execute(
                        sa.select(Customer.external_id).where(
                            Customer.tenant_id == self.actor.tenant_id,
                            Customer.external_id.in_(externals),
                        )
                    )
                ).scalars()
            )
            if externals
            else set()
        )
        errors = []
        for p, row in lost:
            if row["external_id"] and row["external_id"] in taken_external:
                errors.append(RowError(p.row, "external_id", "already used by another customer"))
            elif row["email"] and row["email"] in taken_emails:
                errors.append(RowError(p.row, "email", "already used by another customer"))
            else:
                errors.append(RowError(p.row, None, "refused by a concurrent change; retry it"))
        return errors

    async def _update(
        self,
        session: AsyncSession,
        updates: list[tuple[Prepared, Customer]],
        now: datetime,
        result: ChunkResult,
    ) -> None:
        changed_rows: list[tuple[Prepared, dict[str, Any], list[str]]] = []
        for p, customer in updates:
            assert p.patch is not None
            values = p.patch.model_dump(exclude_unset=True)
            before = _as_row(customer)
            after = dict(before)
            if "metadata" in values:
                metadata = merge_patch(customer.attributes, values.pop("metadata") or {})
                try:
                    check_metadata(metadata)
                except ValueError as exc:
                    result.errors.append(RowError(p.row, "metadata", str(exc)))
                    continue
                after["metadata"] = metadata
            if "address" in values:
                values.pop("address")
                after["address"] = p.patch.address.model_dump() if p.patch.address else None
            if "phone" in values:
                after["phone"] = values.pop("phone")
                after["phone_e164"] = (
                    to_e164(after["phone"], self.policy.region) if after["phone"] else None
                )
            for name, value in values.items():
                if name in _REQUIRED and value is None:
                    continue
                after[name] = value.value if hasattr(value, "value") else value
            changed = [n for n in EDITABLE if after[_column(n)] != before[_column(n)]]
            if not changed:
                result.skipped += 1
                continue
            after["search_text"] = search_text(cast(Customer, SimpleNamespace(**after)))
            after["email_key"] = email_key(after["email"]) if after["email"] else None
            after["version"] = before["version"] + 1
            after["updated_at"] = now
            changed_rows.append((p, after, changed))
        if changed_rows:
            try:
                async with session.begin_nested():
                    await session.execute(_UPDATE, [_params(row) for _, row, _ in changed_rows])
            except IntegrityError:
                # Some row takes another's email or external_id: find which, one by one.
                changed_rows = await self._update_one_by_one(session, changed_rows, result)
        for _, row, changed in changed_rows:
            event_log.emit(
                session,
                self.actor,
                events.CUSTOMER_UPDATED,
                {"customer": api_payload(row), "changed_fields": api_names(set(changed))},
                subject_type="customer",
                subject_id=row["id"],
            )
            result.updated += 1

    async def _update_one_by_one(
        self,
        session: AsyncSession,
        rows: list[tuple[Prepared, dict[str, Any], list[str]]],
        result: ChunkResult,
    ) -> list[tuple[Prepared, dict[str, Any], list[str]]]:
        kept = []
        for p, row, changed in rows:
            try:
                async with session.begin_nested():
                    await session.execute(_UPDATE, [_params(row)])
                kept.append((p, row, changed))
            except IntegrityError as exc:
                text = str(exc.orig)
                name = "external_id" if "external_id" in text else "email"
                result.errors.append(RowError(p.row, name, "already used by another customer"))
        return kept


_REQUIRED = frozenset({"full_name", "customer_type", "status", "tags"})
_SET = (
    *{"metadata" if n == "attributes" else n for n in EDITABLE},
    "search_text",
    "email_key",
    "version",
    "updated_at",
)
_UPDATE = (
    sa.update(_CUSTOMERS)
    .where(_CUSTOMERS.c.id == sa.bindparam("b_id"))
    .values({name: sa.bindparam(f"b_{name}") for name in _SET})
)


def _column(name: str) -> str:
    return "metadata" if name == "attributes" else name


def _params(row: dict[str, Any]) -> dict[str, Any]:
    return {"b_id": row["id"], **{f"b_{name}": row[name] for name in _SET}}


def _at(row: int, error: RowError) -> RowError:
    return RowError(row, error.field, error.reason)


def _as_row(customer: Customer) -> dict[str, Any]:
    row = {
        c: getattr(customer, c)
        for c in (
            "id",
            "external_id",
            "email",
            "full_name",
            "phone",
            "phone_e164",
            "company",
            "address",
            "customer_type",
            "status",
            "tags",
            "order_count",
            "total_order_value",
            "currency",
            "complaint_count",
            "last_order_at",
            "created_at",
            "updated_at",
            "deleted_at",
            "version",
        )
    }
    row["metadata"] = customer.attributes
    return row


async def _copy_insert(session: AsyncSession, lines: list[str]) -> set[str]:
    """Insert through a staging table (kit/pgcopy.py), skipping what a unique index
    refuses; returns the ids written."""
    columns = ", ".join(f'"{c}"' for c in _COLUMNS)
    written = await pgcopy.insert_through_stage(
        session,
        stage=_STAGE,
        definition="(LIKE customers)",
        columns=columns,
        lines=lines,
        insert=(
            f"WITH staged AS (DELETE FROM {_STAGE} RETURNING *)"
            f" INSERT INTO customers ({columns}) SELECT {columns} FROM staged"
            " ON CONFLICT DO NOTHING RETURNING id"
        ),
    )
    return {row[0] for row in written}
