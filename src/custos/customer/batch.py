"""Create or upsert up to 1,000 customers in one call, all-or-nothing or item by item."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from custos.audit import service as audit
from custos.auth.principal import Principal
from custos.customer import service
from custos.customer.repository import CustomerRepository
from custos.customer.schemas import (
    BatchItemResult,
    BatchMode,
    BatchResult,
    CustomerBatch,
    CustomerCreate,
    CustomerPatch,
)
from custos.event import service as event_log
from custos.exceptions import CustosError, InvalidInput


async def run(
    session: AsyncSession, actor: Principal, body: CustomerBatch, *, atomic: bool
) -> BatchResult:
    results: list[BatchItemResult] = []
    for index, raw in enumerate(body.items):
        queued = audit.pending_count(session), event_log.pending_count(session)
        try:
            # A savepoint per item: a failed item leaves the others and the transaction whole.
            async with session.begin_nested():
                results.append(await _one(session, actor, index, raw, body.mode))
        except ValidationError as exc:
            _discard(session, queued)
            results.append(_failed(index, _validation_errors(exc)))
        except CustosError as exc:
            _discard(session, queued)
            errors = exc.errors or [{"loc": [], "msg": exc.detail}]
            results.append(_failed(index, errors))
    failed = [r for r in results if r.status == "error"]
    if atomic and failed:
        raise InvalidInput(
            f"{len(failed)} of {len(results)} items are invalid; nothing was written",
            errors=[{"index": r.index, "errors": r.errors} for r in failed],
        )
    return BatchResult(
        created=sum(r.status == "created" for r in results),
        updated=sum(r.status == "updated" for r in results),
        failed=len(failed),
        results=results,
    )


async def _one(
    session: AsyncSession, actor: Principal, index: int, raw: dict[str, Any], mode: BatchMode
) -> BatchItemResult:
    item = CustomerCreate.model_validate(raw)
    if mode == BatchMode.upsert:
        existing = await _match(session, actor, item)
        if existing is not None:
            patch = CustomerPatch.model_validate(item.model_dump(include=set(raw)))
            updated = await service.patch(session, actor, existing, patch, None)
            return BatchItemResult(index=index, status="updated", id=updated.id)
    created = await service.create(session, actor, item)
    return BatchItemResult(index=index, status="created", id=created.id)


async def _match(session: AsyncSession, actor: Principal, item: CustomerCreate) -> str | None:
    repo = CustomerRepository(session, actor.tenant_id)
    if item.external_id:
        found = await repo.external_id_owner(item.external_id)
        if found:
            return found
    if item.email:
        return await repo.live_email_owner(item.email)
    return None


def _discard(session: AsyncSession, queued: tuple[int, int]) -> None:
    """The item's savepoint was rolled back: so are its audit entries and events."""
    audit.discard_after(session, queued[0])
    event_log.discard_after(session, queued[1])


def _failed(index: int, errors: list[dict[str, Any]]) -> BatchItemResult:
    return BatchItemResult(index=index, status="error", errors=errors)


def _validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    # As in every 422: where and why, never the input itself.
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
