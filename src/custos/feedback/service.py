"""Feedback rules: ingest (sentiment, duplicates, complaints, events), triage, reads.

Every path that writes feedback (one item, a batch, an upload, a bulk import) goes through
`ingest()`, so they all score, deduplicate and count complaints the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from custos import events
from custos.audit import service as audit
from custos.auth.principal import Principal
from custos.config import Settings
from custos.customer import statistics
from custos.event import service as event_log
from custos.exceptions import Conflict, InvalidInput, NotFound
from custos.feedback import dedup
from custos.feedback.analysis import Fingerprint, analyse
from custos.feedback.analysis import fingerprint as fingerprint  # holders, tests
from custos.feedback.repository import FeedbackRepository
from custos.feedback.schemas import (
    Feedback as FeedbackOut,
)
from custos.feedback.schemas import (
    FeedbackCreate,
    FeedbackPatch,
    FeedbackStatus,
    FeedbackType,
    IngestResult,
    ItemError,
)
from custos.kit.cpupool import split_map
from custos.kit.etag import check_if_match
from custos.kit.etag import etag as etag  # the endpoints set the header
from custos.kit.gcpause import full_collections_deferred, gc_paused
from custos.kit.ids import new_ids
from custos.kit.overlap import let_finish, while_waiting
from custos.kit.time import as_utc, utcnow
from custos.models import Feedback
from custos.privacy import settings as privacy_settings
from custos.privacy.ingest import TextWriter, as_given, text_writer
from custos.privacy.keys import keys_for

_API_FIELDS = frozenset(FeedbackOut.model_fields) - {"metadata"}

# Where each status may go next; a closed item is reopened by moving it back to work.
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"triaged", "in_progress", "resolved", "closed"}),
    "triaged": frozenset({"in_progress", "resolved", "closed"}),
    "in_progress": frozenset({"triaged", "resolved", "closed"}),
    "resolved": frozenset({"in_progress", "closed"}),
    "closed": frozenset({"in_progress"}),
}


def _stored(body: FeedbackCreate, free_text: TextWriter, name: str | None) -> FeedbackCreate:
    """The item as the tenant's privacy settings store it: content and subject as given,
    masked or pseudonymised, the name of the customer it is from found as such. Sentiment,
    hashes and sketches are taken from what is stored."""
    names = (name,) if name else ()
    subject = free_text(body.subject, names) if body.subject else body.subject
    return body.model_copy(update={"content": free_text(body.content, names), "subject": subject})


def to_api(row: dict[str, Any]) -> dict[str, Any]:
    """A written row (column names) as the API shows it, JSON-ready: events carry this."""
    values = {k: v for k, v in row.items() if k in _API_FIELDS}
    values["attributes"] = row["metadata"]
    return FeedbackOut.model_validate(values).model_dump(mode="json")


@dataclass
class Candidate:
    id: str
    customer_id: str | None
    content_hash: str
    sketch: tuple[int, ...]
    original_id: str
    received_at: datetime
    minima: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        self.minima = frozenset(self.sketch)


@dataclass
class DuplicateIndex:
    """Earlier feedback within the window that may match this call's items (found by
    content hash or shared band key), including what this call added."""

    window: timedelta
    threshold: float
    by_band: dict[int, list[Candidate]] = field(default_factory=dict)
    by_hash: dict[tuple[str | None, str], list[Candidate]] = field(default_factory=dict)
    by_id: dict[str, Candidate] = field(default_factory=dict)

    def add(self, candidate: Candidate, bands: Iterable[int]) -> None:
        self.by_id[candidate.id] = candidate
        for band in bands:
            self.by_band.setdefault(band, []).append(candidate)
        self.by_hash.setdefault((candidate.customer_id, candidate.content_hash), []).append(
            candidate
        )

    def match(
        self,
        customer_id: str | None,
        content_hash: str,
        sketch: tuple[int, ...],
        bands: list[int],
        received_at: datetime,
    ) -> tuple[str, str, float] | None:
        """(original id, "exact" or "near", similarity) or None."""
        for earlier in self.by_hash.get((customer_id, content_hash), ()):
            if abs(earlier.received_at - received_at) <= self.window:
                return earlier.original_id, "exact", 1.0
        best: tuple[str, str, float] | None = None
        minima = frozenset(sketch)
        # Sketches of texts this similar share most of their minima: a set intersection
        # rules out the rest before the estimate is computed.
        needed = self.threshold * min(len(minima), dedup.K) * 0.75
        shared: dict[str, int] = {}
        for band in bands:
            for earlier in self.by_band.get(band, ()):
                shared[earlier.id] = shared.get(earlier.id, 0) + 1
        for earlier_id, count in shared.items():
            if count < dedup.MIN_SHARED_BANDS:
                continue
            earlier = self.by_id[earlier_id]
            if earlier.customer_id != customer_id:
                continue
            if len(minima & earlier.minima) < needed:
                continue
            if abs(earlier.received_at - received_at) > self.window:
                continue
            score = dedup.similarity(earlier.sketch, sketch)
            if score >= self.threshold and (best is None or score > best[2]):
                best = (earlier.original_id, "near", round(score, 4))
        return best


def _threshold(settings: Settings, actor: Principal) -> float:
    tenant = actor.tenant_settings or {}
    value = tenant.get("feedback_near_duplicate_threshold")
    if isinstance(value, int | float) and 0 < value <= 1:
        return float(value)
    return settings.feedback_near_duplicate_threshold


async def duplicate_index(
    repo: FeedbackRepository,
    settings: Settings,
    actor: Principal,
    items: Sequence[FeedbackCreate],
    prints: Sequence[Fingerprint],
    now: datetime,
    shared: dict[str, list[int]],
) -> DuplicateIndex:
    """The index for one call, from its items' band keys' hits (`repo.band_hits`) and one
    look-up of the rows worth comparing and of the same content hashes."""
    window = timedelta(hours=settings.feedback_duplicate_window_hours)
    index = DuplicateIndex(window=window, threshold=_threshold(settings, actor))
    earliest = min((as_utc(i.received_at) for i in items if i.received_at), default=now)
    rows = await repo.candidates(
        _near_enough(shared, prints), {p.content_hash for p in prints}, min(earliest, now) - window
    )
    with gc_paused():  # thousands of candidates built at once (kit/gcpause.py)
        for row in rows:
            index.add(
                Candidate(
                    id=row.id,
                    customer_id=row.customer_id,
                    content_hash=row.content_hash,
                    sketch=dedup.decode(row.sketch),
                    original_id=row.duplicate_of_id or row.id,
                    received_at=row.received_at,
                ),
                shared.get(row.id, ()),
            )
    return index


def _near_enough(shared: dict[str, list[int]], prints: Sequence[Fingerprint]) -> set[str]:
    """The earlier items sharing at least MIN_SHARED_BANDS keys with one of these items:
    the only ones worth fetching."""
    items_by_key: dict[int, list[int]] = {}
    for position, printed in enumerate(prints):
        for key in printed.bands:
            items_by_key.setdefault(key, []).append(position)
    wanted = set()
    for feedback_id, keys in shared.items():
        if len(keys) < dedup.MIN_SHARED_BANDS:
            continue
        per_item: dict[int, int] = {}
        for key in keys:
            for position in items_by_key.get(key, ()):
                per_item[position] = per_item.get(position, 0) + 1
        if max(per_item.values(), default=0) >= dedup.MIN_SHARED_BANDS:
            wanted.add(feedback_id)
    return wanted


@dataclass
class Ingested:
    rows: list[dict[str, Any]]
    errors: list[ItemError]
    duplicates: int


async def ingest(
    session: AsyncSession,
    actor: Principal,
    settings: Settings,
    items: Sequence[tuple[int, FeedbackCreate]],
) -> Ingested:
    """Write validated items (each with its position or row number). Unknown customers
    are per-item errors; the rest are written with one INSERT, their events queued and
    complaints counted. No audit row: the caller writes the one its request needs."""
    # A call builds thousands of objects that live until its end: full collections would
    # walk them again and again (kit/gcpause.py).
    with full_collections_deferred():
        return await _ingest(session, actor, settings, items)


async def _ingest(
    session: AsyncSession,
    actor: Principal,
    settings: Settings,
    items: Sequence[tuple[int, FeedbackCreate]],
) -> Ingested:
    repo = FeedbackRepository(session, actor.tenant_id)
    now = utcnow()
    wanted = {body.customer_id for _, body in items if body.customer_id}
    known = await repo.live_customer_names(wanted)
    errors: list[ItemError] = []
    accepted: list[tuple[int, FeedbackCreate]] = []
    for position, body in items:
        if body.customer_id and body.customer_id not in known:
            errors.append(
                ItemError(
                    index=position,
                    errors=[{"loc": ["customer_id"], "msg": "no such customer"}],
                )
            )
        else:
            accepted.append((position, body))
    free_text = text_writer(
        await privacy_settings.tenant_settings(session, actor),
        keys_for(session, actor.tenant_id),
    )
    if free_text is not as_given:
        # The person's own name is known, wherever it stands (as for notes).
        accepted = [
            (position, _stored(body, free_text, known.get(body.customer_id or "")))
            for position, body in accepted
        ]
    analysed, shared = await _analysed_and_looked_up(
        repo, settings, [(body.content, body.customer_id) for _, body in accepted]
    )
    prints = [printed for _, _, printed in analysed]
    scores = [(score, label) for score, label, _ in analysed]
    index = await duplicate_index(
        repo, settings, actor, [b for _, b in accepted], prints, now, shared
    )
    shared_columns = {
        "tenant_id": actor.tenant_id,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    with gc_paused():  # thousands of rows built at once (kit/gcpause.py)
        rows: list[dict[str, Any]] = []
        bands: list[tuple[str, list[int]]] = []
        complaints: dict[str, int] = {}
        duplicates = 0
        for (_, body), feedback_id, printed, (score, label) in zip(
            accepted, new_ids("fb", len(accepted)), prints, scores, strict=True
        ):
            content, subject = body.content, body.subject
            received_at = as_utc(body.received_at) if body.received_at else now
            match = index.match(
                body.customer_id, printed.content_hash, printed.sketch, printed.bands, received_at
            )
            original_id, kind, similarity = match if match else (None, None, None)
            duplicates += match is not None
            rows.append(
                {
                    "id": feedback_id,
                    "tenant_id": actor.tenant_id,
                    "customer_id": body.customer_id,
                    "feedback_type": body.feedback_type.value,
                    "subject": subject,
                    "content": content,
                    "source": body.source.value,
                    "rating": body.rating,
                    "status": body.status.value,
                    "tags": body.tags,
                    "metadata": body.metadata,
                    "received_at": received_at,
                    "sentiment_score": round(score, 4),
                    "sentiment_label": label,
                    "content_hash": printed.content_hash,
                    "sketch": dedup.encode(printed.sketch),
                    "duplicate_of_id": original_id,
                    "duplicate_kind": kind,
                    "similarity": similarity,
                    **shared_columns,
                }
            )
            bands.append((feedback_id, printed.bands))
            index.add(
                Candidate(
                    feedback_id,
                    body.customer_id,
                    printed.content_hash,
                    printed.sketch,
                    original_id or feedback_id,
                    received_at,
                ),
                printed.bands,
            )
            # A re-submission of the same complaint counts once; a new wording counts again.
            if (
                body.feedback_type == FeedbackType.complaint
                and body.customer_id
                and kind != "exact"
            ):
                complaints[body.customer_id] = complaints.get(body.customer_id, 0) + 1
    if rows:

        async def write() -> None:
            await repo.insert(rows, shared_columns)
            await repo.add_bands(bands)

        # The events are built while the rows are written: on PostgreSQL in COPY's form
        # (the commit then only sends them), elsewhere their payloads.
        if session.get_bind().dialect.name == "postgresql":
            build = event_log.prebuilder(
                actor, events.FEEDBACK_CREATED, occurred_at=now, subject_type="feedback"
            )
            event_ids = iter(new_ids("evt", len(rows)))
            _, built = await while_waiting(
                write(),
                lambda row: build(next(event_ids), row["id"], {"feedback": to_api(row)}),
                rows,
            )
            event_log.emit_prebuilt(session, built)
        else:
            _, payloads = await while_waiting(write(), to_api, rows)
            event_log.emit_many(
                session,
                actor,
                events.FEEDBACK_CREATED,
                [
                    ({"feedback": payload}, "feedback", row["id"])
                    for payload, row in zip(payloads, rows, strict=True)
                ],
            )
        await statistics.add_complaints(session, actor, complaints)
    return Ingested(rows=rows, errors=errors, duplicates=duplicates)


# From this many items a call is analysed in two halves, the first half's band keys
# looked up while the second is analysed.
_OVERLAP_FROM = 256


async def _analysed_and_looked_up(
    repo: FeedbackRepository, settings: Settings, texts: list[tuple[str, str | None]]
) -> tuple[list[tuple[float, str, Fingerprint]], dict[str, list[int]]]:
    """Sentiment and fingerprint of each (content, customer id), shared with the helper
    processes (they need only the text), and the earlier items sharing a band key with
    any of them (`band_hits`). The look-up waits on the database and the analysis on the
    processor: for a large call they overlap."""
    workers = settings.cpu_workers
    if len(texts) < _OVERLAP_FROM:
        analysed = await split_map(analyse, texts, workers)
        return analysed, await repo.band_hits({b for _, _, p in analysed for b in p.bands})
    half = len(texts) // 2
    first = await split_map(analyse, texts[:half], workers)
    first_keys = {b for _, _, p in first for b in p.bands}
    looking = asyncio.ensure_future(repo.band_hits(first_keys))
    try:
        second = await split_map(analyse, texts[half:], workers)
    except BaseException:
        await let_finish(looking)
        raise
    shared = await looking
    more = await repo.band_hits({b for _, _, p in second for b in p.bands} - first_keys)
    for feedback_id, bands in more.items():
        shared.setdefault(feedback_id, []).extend(bands)
    return first + second, shared


async def create(
    session: AsyncSession, actor: Principal, settings: Settings, body: FeedbackCreate
) -> dict[str, Any]:
    done = await ingest(session, actor, settings, [(0, body)])
    if done.errors:
        raise NotFound("No such customer")
    row = done.rows[0]
    changes = {
        name: {"from": None, "to": row[name]}
        for name in ("customer_id", "feedback_type", "source", "rating", "status")
    }
    if row["duplicate_of_id"]:
        changes["duplicate_of_id"] = {"from": None, "to": row["duplicate_of_id"]}
    audit.record(session, actor, "feedback.created", "feedback", row["id"], changes=changes)
    return row


def validate_items(
    raw_items: Sequence[tuple[int, dict[str, Any]]],
) -> tuple[list[tuple[int, FeedbackCreate]], list[ItemError]]:
    valid: list[tuple[int, FeedbackCreate]] = []
    errors: list[ItemError] = []
    for position, raw in raw_items:
        try:
            valid.append((position, FeedbackCreate.model_validate(raw)))
        except ValidationError as exc:
            errors.append(ItemError(index=position, errors=validation_errors(exc)))
    return valid, errors


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    # Where and why, never the input itself.
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]


async def create_many(
    session: AsyncSession,
    actor: Principal,
    settings: Settings,
    raw_items: Sequence[tuple[int, dict[str, Any]]],
    *,
    action: str,
) -> IngestResult:
    """A batch or an uploaded file, in this request: one summary audit row for the lot."""
    valid, errors = validate_items(raw_items)
    done = await ingest(session, actor, settings, valid)
    errors = sorted([*errors, *done.errors], key=lambda e: e.index)
    if done.rows:
        audit.record(
            session,
            actor,
            action,
            "feedback",
            None,
            changes={
                "created": {"from": None, "to": len(done.rows)},
                "duplicates": {"from": None, "to": done.duplicates},
                "failed": {"from": None, "to": len(errors)},
            },
        )
    return IngestResult(
        created=len(done.rows),
        duplicates=done.duplicates,
        failed=len(errors),
        ids=[r["id"] for r in done.rows],
        errors=errors,
    )


async def get(session: AsyncSession, actor: Principal, feedback_id: str) -> Feedback:
    item = await FeedbackRepository(session, actor.tenant_id).get(feedback_id)
    if item is None:
        raise NotFound("No such feedback")
    return item


async def patch(
    session: AsyncSession,
    actor: Principal,
    feedback_id: str,
    body: FeedbackPatch,
    if_match: str | None,
) -> Feedback:
    values = body.model_dump(exclude_unset=True)
    for name in ("status", "tags"):
        if name in values and values[name] is None:
            raise InvalidInput(
                f"{name} cannot be null", errors=[{"loc": ["body", name], "msg": "cannot be null"}]
            )
    item = await get(session, actor, feedback_id)
    check_if_match(item, if_match, what="feedback")
    before = {"status": item.status, "tags": list(item.tags)}
    status = values.get("status")
    if status is not None and status != item.status:
        if status not in TRANSITIONS[item.status]:
            raise Conflict(
                f"Feedback cannot move from {item.status} to {status}; from {item.status} it "
                f"may go to {', '.join(sorted(TRANSITIONS[item.status]))}"
            )
        item.status = FeedbackStatus(status).value
    if "tags" in values:
        item.tags = values["tags"]
    after = {"status": item.status, "tags": list(item.tags)}
    changed = sorted(name for name in after if after[name] != before[name])
    if changed:
        item.version += 1
        item.updated_at = utcnow()
    await session.flush()
    audit.record(
        session,
        actor,
        "feedback.updated",
        "feedback",
        item.id,
        changes=audit.changed_fields(before, after),
    )
    event_log.emit(
        session,
        actor,
        events.FEEDBACK_UPDATED,
        {
            "feedback": FeedbackOut.model_validate(item).model_dump(mode="json"),
            "changed_fields": changed,
        },
        subject_type="feedback",
        subject_id=item.id,
    )
    return item
