"""Every event, also written to an S3-compatible bucket: one JSON object per event.

Key: `<events_prefix>/<tenant id>/<yyyy>/<mm>/<dd>/<hh>/<event id>.json` (UTC, the hour the
event occurred), body: the event exactly as webhooks receive it (event/envelope.py). One
object per event, rather than batched files, so that an event's object can be rewritten or
deleted alone (erasing a person touches only the events about them) and a retried upload
simply writes the same object again. See docs/decisions/0032-events-in-object-storage.md.

For erasure (the privacy feature): rewrite the events' payloads in the database, then
`rewrite_objects(runtime, tenant_id, event_ids)` uploads them again; before deleting event
rows, take their `object_key(...)`s and pass them to `delete_objects(runtime, keys)`.

boto3 blocks, so every call runs on a small thread pool of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from custos.config import Settings
from custos.event.envelope import EventRow, message_bytes
from custos.kit.time import as_utc

if TYPE_CHECKING:
    from custos.runtime import Runtime

log = structlog.get_logger(__name__)

THREADS = 8


class PublishFailed(Exception):
    def __init__(self, failed: list[str], first_error: BaseException) -> None:
        super().__init__(
            f"{len(failed)} events not written to the bucket: {type(first_error).__name__}"
        )
        self.failed = failed


def object_key(prefix: str, tenant_id: str, occurred_at: datetime, event_id: str) -> str:
    at = as_utc(occurred_at)
    path = f"{tenant_id}/{at:%Y/%m/%d/%H}/{event_id}.json"
    prefix = prefix.strip("/")
    return f"{prefix}/{path}" if prefix else path


class EventPublisher:
    def __init__(self, settings: Settings) -> None:
        assert settings.events_bucket is not None
        self.settings = settings
        self.bucket = settings.events_bucket
        self.prefix = settings.events_prefix
        self._pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="custos-s3")
        self._client: Any = None

    def key(self, row: EventRow) -> str:
        return object_key(self.prefix, row.tenant_id, row.occurred_at, row.id)

    def _s3(self) -> Any:
        if self._client is None:
            import boto3  # imported when first needed: it takes a while to load
            from botocore.config import Config

            secret = self.settings.s3_secret_access_key
            self._client = boto3.session.Session().client(
                "s3",
                endpoint_url=self.settings.s3_endpoint_url,
                region_name=self.settings.s3_region,
                aws_access_key_id=self.settings.s3_access_key_id,
                aws_secret_access_key=secret.get_secret_value() if secret else None,
                config=Config(
                    connect_timeout=5,
                    read_timeout=15,
                    retries={"max_attempts": 2, "mode": "standard"},
                    max_pool_connections=THREADS,
                ),
            )
        return self._client

    async def _call(self, method: str, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: getattr(self._s3(), method)(**kwargs))

    async def put(self, rows: Sequence[EventRow]) -> None:
        """Write every row's object; PublishFailed names the events that were not written."""
        results = await asyncio.gather(
            *(
                self._call(
                    "put_object",
                    Bucket=self.bucket,
                    Key=self.key(row),
                    Body=message_bytes(row),
                    ContentType="application/json",
                )
                for row in rows
            ),
            return_exceptions=True,
        )
        failed = [
            row.id
            for row, result in zip(rows, results, strict=True)
            if isinstance(result, BaseException)
        ]
        if failed:
            first = next(r for r in results if isinstance(r, BaseException))
            raise PublishFailed(failed, first)

    async def delete(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            await self._call(
                "delete_objects",
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in chunk], "Quiet": True},
            )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


async def rewrite_objects(runtime: Runtime, tenant_id: str, event_ids: Sequence[str]) -> int:
    """Upload these events again as they are now in the database; returns how many."""
    from custos.event.repository import EventRepository

    if runtime.publisher is None or not event_ids:
        return 0
    async with runtime.db.transaction(tenant_id=tenant_id, write=False) as session:
        rows = await EventRepository(session, tenant_id).by_ids(event_ids)
    await runtime.publisher.put(rows)
    return len(rows)


async def delete_objects(runtime: Runtime, keys: Sequence[str]) -> None:
    if runtime.publisher is not None and keys:
        await runtime.publisher.delete(keys)
