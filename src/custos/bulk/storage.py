"""Where import sources and export results live: a local directory today, behind a small
interface an object-storage backend can implement too."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from custos.config import Settings

_KEY = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)*$")


class Storage(Protocol):
    def save(self, key: str, source: Path) -> int: ...

    def fetch(self, key: str) -> contextlib.AbstractContextManager[Path]: ...

    def writer(self, key: str) -> contextlib.AbstractContextManager[Path]: ...

    def iter_bytes(self, key: str, chunk_size: int = 262_144) -> Iterator[bytes]: ...

    def size(self, key: str) -> int: ...

    def delete(self, key: str) -> None: ...


def check_key(key: str) -> str:
    # Keys are built by Custos from ids, never from client input; this holds them to that.
    if not _KEY.match(key) or ".." in key:
        raise ValueError("not a storage key")
    return key


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def save(self, key: str, source: Path) -> int:
        with self.writer(key) as target:
            shutil.copyfile(source, target)
            return target.stat().st_size

    @contextlib.contextmanager
    def fetch(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        yield path

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[Path]:
        """A temporary file that becomes `key` only when the block succeeds."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
        os.close(fd)
        try:
            yield Path(tmp)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def iter_bytes(self, key: str, chunk_size: int = 262_144) -> Iterator[bytes]:
        with self._path(key).open("rb") as f:
            while chunk := f.read(chunk_size):
                yield chunk

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()


def storage_for(settings: Settings) -> Storage:
    return LocalStorage(Path(settings.bulk_storage_dir).resolve())
