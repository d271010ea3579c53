"""Bulk operations as personal-data holders: the stored files (import sources, export
results) and the error reports of imports."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import sqlalchemy as sa

from custos.bulk import formats
from custos.bulk.schemas import FINISHED
from custos.bulk.storage import Storage, storage_for
from custos.models import BulkOperation, BulkOperationError
from custos.privacy.holders import Context, Erased, Holder, Subject, register
from custos.privacy.holders.builtin import mentions_any


class BulkErrors(Holder):
    """A failed row's reason names the field and the rule, and may quote what was sent."""

    name = "bulk_operation_errors"
    order = 10

    async def export(self, ctx: Context) -> None:  # noqa: ARG002
        return None  # reports about rows of files, not data about the person

    async def erase(self, ctx: Context) -> list[Erased]:
        if not ctx.subject.identifiers:
            return [Erased(self.name, "scrubbed", 0, ["reason"])]
        rows = await ctx.session.scalars(
            sa.select(BulkOperationError).where(
                BulkOperationError.tenant_id == ctx.subject.tenant_id,
                mentions_any(BulkOperationError.reason, ctx.subject.like_patterns()),
            )
        )
        count = 0
        for row in rows:
            cleaned = ctx.subject.scrub(row.reason)
            if cleaned != row.reason:
                row.reason = cleaned
                count += 1
        await ctx.session.flush()
        return [Erased(self.name, "scrubbed", count, ["reason"])]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def file_mentions(
    storage: Storage, key: str, fmt: str, subject: Subject, max_uncompressed: int
) -> bool:
    """Whether any cell of the stored file holds one of the person's identifiers or ids.
    A file that can no longer be read counts as mentioning them: it is not kept unread."""
    ids = set(subject.customer_ids)
    try:
        with storage.fetch(key) as path:
            inspection = formats.inspect(path, formats.FileFormat(fmt), max_uncompressed)
            for _, values in formats.open_rows(path, inspection, max_uncompressed):
                cells = values.values() if isinstance(values, dict) else [values]
                for cell in cells:
                    if cell is None:
                        continue
                    text = _text(cell)
                    if text in ids or subject.mentions(text):
                        return True
    except FileNotFoundError:
        return False
    except (ValueError, UnicodeDecodeError):
        return True  # formats.FileRefused is a ValueError too
    return False


class BulkFiles(Holder):
    """Finished operations' files: an import's source and an export's result. A file
    holding the person is deleted; the operation stays, and its
    download answers 404. Files of operations still running are left to them."""

    name = "bulk_files"
    order = 10

    async def export(self, ctx: Context) -> None:  # noqa: ARG002
        return None  # copies of records exported with their own holders

    async def erase(self, ctx: Context) -> list[Erased]:
        settings = ctx.runtime.settings
        storage = storage_for(settings)
        operations = await ctx.session.scalars(
            sa.select(BulkOperation).where(
                BulkOperation.tenant_id == ctx.subject.tenant_id,
                BulkOperation.status.in_([s.value for s in FINISHED]),
            )
        )
        doomed: list[str] = []
        for op in operations:
            for key in (op.source_key, op.result_key):
                if not key:
                    continue
                named = await asyncio.to_thread(
                    file_mentions,
                    storage,
                    key,
                    op.format,
                    ctx.subject,
                    settings.bulk_max_uncompressed_bytes,
                )
                if named:
                    doomed.append(key)
        # Deleted now, not after the commit: should the erasure roll back it runs again,
        # and the files are to go either way; a crash after a commit cannot leave them.
        for key in doomed:
            await asyncio.to_thread(storage.delete, key)
        return [Erased(self.name, "deleted", len(doomed), ["file"], "files naming the person")]


register(BulkErrors())
register(BulkFiles())
