"""Receiving a multipart file into a temporary file, bounded."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import UploadFile

from custos.bulk import formats
from custos.exceptions import InvalidInput, PayloadTooLarge


@contextlib.asynccontextmanager
async def received(upload: UploadFile, limit: int) -> AsyncIterator[Path]:
    fd, name = tempfile.mkstemp(prefix="custos-upload-")
    path = Path(name)
    try:
        size = 0
        with os.fdopen(fd, "wb") as out:
            while chunk := await upload.read(1_048_576):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"The file is larger than {limit} bytes")
                out.write(chunk)
        if size == 0:
            raise InvalidInput(
                "The file is empty", errors=[{"loc": ["body", "file"], "msg": "empty"}]
            )
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def format_of(upload: UploadFile, given: str | None) -> formats.FileFormat:
    if given:
        try:
            return formats.FileFormat(given.lower())
        except ValueError:
            pass
    found = formats.format_from_name(upload.filename, upload.content_type)
    if found is None:
        raise InvalidInput(
            "Say which format the file is in (csv, json, ndjson or xlsx)",
            errors=[{"loc": ["body", "format"], "msg": "unknown format"}],
        )
    return found
