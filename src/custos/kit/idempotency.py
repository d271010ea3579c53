"""Idempotency-Key for writes: the same key and the same request get the same response; the
same key with a different request is refused (422).

The key is claimed in the write's own transaction, before the write, so a concurrent retry
either waits and then finds the stored response, or is told to retry (409); it never
writes twice. Responses are kept for 24 hours.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any

import orjson
import sqlalchemy as sa
from fastapi import Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from custos.auth.principal import Principal
from custos.exceptions import Conflict, InvalidInput
from custos.kit.ids import new_id
from custos.kit.time import utcnow
from custos.models import IdempotencyKey

RETENTION = timedelta(hours=24)

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Retry-safe writes: the same key and body get the same response for 24 h",
    ),
]


def fingerprint(method: str, route: str, body: Any) -> str:
    payload = orjson.dumps([method, route, body], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(payload).hexdigest()


class Idempotency:
    def __init__(
        self, session: AsyncSession, principal: Principal, key: str, request_fingerprint: str
    ) -> None:
        self.session = session
        self.principal = principal
        self.key = key
        self.fingerprint = request_fingerprint
        self._row: IdempotencyKey | None = None

    async def replay(self) -> IdempotencyKey | None:
        """The stored response for this key, or None after claiming the key for this write."""
        stmt = sa.select(IdempotencyKey).where(
            IdempotencyKey.tenant_id == self.principal.tenant_id,
            IdempotencyKey.principal_id == self.principal.id,
            IdempotencyKey.key == self.key,
        )
        found = (await self.session.execute(stmt)).scalar_one_or_none()
        if found is not None and found.created_at < utcnow() - RETENTION:
            await self.session.delete(found)
            await self.session.flush()
            found = None
        if found is not None:
            if found.fingerprint != self.fingerprint:
                raise InvalidInput(
                    "This Idempotency-Key was used for a different request",
                    errors=[{"loc": ["header", "Idempotency-Key"], "msg": "reused"}],
                )
            return found
        self._row = IdempotencyKey(
            id=new_id("idem"),
            tenant_id=self.principal.tenant_id,
            principal_id=self.principal.id,
            key=self.key,
            fingerprint=self.fingerprint,
            status_code=0,
            response={},
        )
        self.session.add(self._row)
        try:
            await self.session.flush()
        except IntegrityError:
            raise Conflict(
                "A request with this Idempotency-Key is in progress; retry it shortly"
            ) from None
        return None

    async def remember(
        self, status_code: int, body: dict[str, Any], headers: dict[str, str]
    ) -> None:
        assert self._row is not None, "replay() claims the key first"
        self._row.status_code = status_code
        self._row.response = body
        self._row.headers = headers
        await self.session.flush()


async def begin(
    session: AsyncSession,
    principal: Principal,
    key: str | None,
    route: str,
    body: Any,
) -> tuple[Idempotency | None, JSONResponse | None]:
    """For a creating POST: with a key, claim it (or find the response to replay)."""
    if not key:
        return None, None
    idempotency = Idempotency(session, principal, key, fingerprint("POST", route, body))
    stored = await idempotency.replay()
    if stored is not None:
        return idempotency, JSONResponse(
            stored.response, stored.status_code, headers=stored.headers
        )
    return idempotency, None


async def created_once(
    session: AsyncSession,
    principal: Principal,
    key: str | None,
    route: str,
    body: BaseModel | dict[str, Any],
    create: Callable[[], Awaitable[tuple[dict[str, Any], dict[str, str]]]],
    *,
    status: int = 201,
) -> JSONResponse:
    """`status` with what `create` made (its JSON and headers); with an Idempotency-Key, a
    retry of the same request gets the stored answer instead of a second resource."""
    content = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
    idempotency, replay = await begin(session, principal, key, route, content)
    if replay is not None:
        return replay
    made, headers = await create()
    if idempotency is not None:
        await idempotency.remember(status, made, headers)
    return JSONResponse(made, status, headers=headers)
