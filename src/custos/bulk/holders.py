"""Bulk operations as personal-data holders: the stored files (import sources, export
results) and the error reports of imports."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import sqlalchemy as sa

from custos.bulk import formats
from custos.bulk.schemas import FINISHED
from custos.bulk.storage import Storage, storage_for
from custos.models import BulkOperation, BulkOperationError
from custos.privacy.holders import Context, Erased, Holder, Subject, register
from custos.privacy.holders.builtin import scrub_mentions


class BulkErrors(Holder):
    """A failed row's reason names the field and the rule, and may quote what was sent."""

    name = "bulk_operation_errors"
    order = 10

    async def export(self, ctx: Context) -> None:  # noqa: ARG002
        return None  # reports about rows of files, not data about the person

    async def erase(self, ctx: Context) -> list[Erased]:
        count = (
            await scrub_mentions(ctx, BulkOperationError.reason) if ctx.subject.identifiers else 0
        )
        return [Erased(self.name, "scrubbed", count, ["reason"])]


_CHUNK_CHARS = 1_048_576


def _text_mentions(path: Path, encoding: str, needles: list[str]) -> bool:
    """A plain substring search of the decoded text, a chunk at a time (chunks overlap by
    the longest needle, so none is missed across a boundary)."""
    overlap = max(len(n) for n in needles) - 1
    tail = ""
    with path.open(encoding=encoding, errors="replace", newline="") as text:
        while chunk := text.read(_CHUNK_CHARS):
            window = (tail + chunk).lower()
            if any(n in window for n in needles):
                return True
            tail = window[-overlap:] if overlap else ""
    return False


def _cells_mention(path: Path, needles: list[str], max_uncompressed: int) -> bool:
    for _, values in formats.read_xlsx(path, max_uncompressed)[1]:
        cells = values.values() if isinstance(values, dict) else [values]
        for cell in cells:
            if cell is not None:
                text = (cell if isinstance(cell, str) else json.dumps(cell, default=str)).lower()
                if any(n in text for n in needles):
                    return True
    return False


def file_mentions(
    storage: Storage, key: str, fmt: str, subject: Subject, max_uncompressed: int
) -> bool:
    """Whether the stored file holds one of the person's identifiers or record ids (as
    written, or as JSON escapes them). A file that can no longer be read counts as holding
    them: it is not kept unread."""
    needles = [p.lower() for p in subject.like_patterns()]
    if not needles:
        return False
    try:
        with storage.fetch(key) as path:
            if fmt == formats.FileFormat.xlsx:
                return _cells_mention(path, needles, max_uncompressed)
            return _text_mentions(path, formats.detect_encoding(path), needles)
    except FileNotFoundError:
        return False
    except (formats.FileRefused, ValueError, OSError):
        return True  # refused by the readers, or not decodable


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
