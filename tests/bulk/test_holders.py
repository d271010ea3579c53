"""Erasure's look into stored bulk files: any encoding, across chunk boundaries, and a
file that cannot be read counts as naming the person."""

from __future__ import annotations

from pathlib import Path

import pytest

from custos.bulk import holders
from custos.bulk.storage import LocalStorage
from custos.privacy.holders import Subject
from tests.bulk.helpers import csv_bytes, xlsx_bytes

PERSON = Subject(
    tenant_id="ten_1",
    customer_id="cus_01JDX0000000000000000000AA",
    customer_ids=("cus_01JDX0000000000000000000AA",),
    identifiers=("amara.nwosu@example.com", "Amara Nwosu"),
)
LIMIT = 50_000_000


def _stored(tmp_path: Path, name: str, content: bytes) -> LocalStorage:
    storage = LocalStorage(tmp_path)
    (tmp_path / "exports").mkdir(exist_ok=True)
    (tmp_path / "exports" / name).write_bytes(content)
    return storage


def _names(tmp_path: Path, name: str, content: bytes, fmt: str) -> bool:
    storage = _stored(tmp_path, name, content)
    return holders.file_mentions(storage, f"exports/{name}", fmt, PERSON, LIMIT)


ROWS = [["full_name", "email"], ["Someone Else", "else@example.com"]]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "latin-1"])
def test_a_text_file_naming_the_person_is_found_in_any_encoding(
    tmp_path: Path, encoding: str
) -> None:
    named = csv_bytes([*ROWS, ["AMARA NWOSU", "x@example.com"]], encoding=encoding)
    assert _names(tmp_path, "named.csv", named, "csv")
    assert not _names(tmp_path, "other.csv", csv_bytes(ROWS, encoding=encoding), "csv")


def test_a_mention_across_a_chunk_boundary_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(holders, "_CHUNK_CHARS", 16)
    text = "x" * 10 + "amara.nwosu@example.com" + "y" * 40
    assert _names(tmp_path, "split.ndjson", f'{{"note": "{text}"}}\n'.encode(), "ndjson")


def test_a_record_id_counts_and_non_ascii_names_are_found_as_json_escapes_them(
    tmp_path: Path,
) -> None:
    by_id = f'[{{"id": "{PERSON.customer_id}"}}]'.encode()
    assert _names(tmp_path, "by-id.json", by_id, "json")
    muller = Subject("ten_1", "cus_x", ("cus_x",), identifiers=("Jürgen Müller",))
    storage = _stored(tmp_path, "escaped.json", b'[{"full_name": "J\\u00fcrgen M\\u00fcller"}]')
    assert holders.file_mentions(storage, "exports/escaped.json", "json", muller, LIMIT)


def test_xlsx_cells_are_read(tmp_path: Path) -> None:
    assert _names(tmp_path, "named.xlsx", xlsx_bytes([*ROWS, ["Amara Nwosu", "a@b.c"]]), "xlsx")
    assert not _names(tmp_path, "other.xlsx", xlsx_bytes(ROWS), "xlsx")


def test_an_unreadable_file_counts_as_naming_them_and_a_missing_one_does_not(
    tmp_path: Path,
) -> None:
    assert _names(tmp_path, "broken.xlsx", b"PK\x03\x04 not a workbook", "xlsx")
    storage = LocalStorage(tmp_path)
    assert not holders.file_mentions(storage, "exports/gone.csv", "csv", PERSON, LIMIT)
