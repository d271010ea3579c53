"""Reading an import's file: its rows are closed, and the file with them, however the
reading ends."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from custos.bulk import formats
from tests.bulk.helpers import csv_bytes

ROWS = [["email", "full_name"], *([f"p{i}@example.com", f"P {i}"] for i in range(50))]
LIMIT = 10 * 1024 * 1024


def _open_descriptors_on(path: Path) -> int:
    fds = Path("/proc/self/fd")
    if not fds.exists():
        pytest.skip("needs /proc to see this process's open files")
    count = 0
    for fd in os.listdir(fds):
        with contextlib.suppress(OSError):  # the listing's own descriptor, gone by now
            count += os.readlink(fds / fd) == str(path)
    return count


def test_a_failure_mid_file_leaves_it_closed(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(csv_bytes(ROWS))
    inspection = formats.inspect(path, formats.FileFormat.csv, LIMIT)
    with pytest.raises(RuntimeError, match="chunk failed") as failure:
        _read_one_row_then_fail(path, inspection)
    # Closed at once, though the error's frames still hold the reader.
    assert failure.traceback
    assert _open_descriptors_on(path) == 0


def _read_one_row_then_fail(path: Path, inspection: formats.Inspection) -> None:
    with formats.opened_rows(path, inspection, LIMIT) as rows:
        assert next(rows) == (2, {"email": "p0@example.com", "full_name": "P 0"})
        assert _open_descriptors_on(path) == 1
        raise RuntimeError("chunk failed")


def test_counting_reads_every_row_and_closes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(csv_bytes(ROWS))
    inspection = formats.inspect(path, formats.FileFormat.csv, LIMIT)
    assert formats.count_rows(path, inspection, LIMIT) == 50
    assert _open_descriptors_on(path) == 0
