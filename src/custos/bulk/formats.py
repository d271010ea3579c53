"""Reading uploaded files: CSV, JSON, NDJSON and XLSX, defensively.

Every reader yields `(row number, values by column)` or `(row number, problem)`. Row numbers
are what a person sees in a spreadsheet: the header is row 1, so the first data row is 2
(in JSON the first item is 1; in NDJSON the line number). A problem with the file as a
whole (undecodable, not an XLSX, a zip bomb, an XML entity declaration) raises
`FileRefused` before any row is read.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson
import python_calamine

from custos.exceptions import InvalidInput

# Each CSV field may hold up to this many characters (csv's default is 128 KiB).
MAX_FIELD_CHARS = 1_048_576
MAX_COLUMNS = 500
# An XLSX part may expand to at most this many times its compressed size; real
# spreadsheets compress 5-20x, bombs thousands of times.
MAX_ZIP_RATIO = 100
MAX_ZIP_MEMBERS = 10_000
DELIMITERS = ",;\t|"
_PROLOG_BYTES = 4096
_DECLARATION = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)

csv.field_size_limit(MAX_FIELD_CHARS)


class FileFormat(StrEnum):
    csv = "csv"
    json = "json"
    ndjson = "ndjson"
    xlsx = "xlsx"


class FileRefused(InvalidInput):
    """The file as a whole cannot be read; nothing in it was imported."""


Row = tuple[int, dict[str, Any] | str]


@dataclass(frozen=True, slots=True)
class Inspection:
    """What a first look at a file found: enough to map columns and to refuse early."""

    format: FileFormat
    encoding: str | None
    delimiter: str | None
    headers: list[str]


def format_from_name(name: str | None, content_type: str | None) -> FileFormat | None:
    suffix = (name or "").rsplit(".", 1)[-1].lower() if name and "." in name else ""
    by_suffix = {
        "csv": "csv",
        "tsv": "csv",
        "txt": "csv",
        "json": "json",
        "ndjson": "ndjson",
        "jsonl": "ndjson",
        "xlsx": "xlsx",
    }
    if suffix in by_suffix:
        return FileFormat(by_suffix[suffix])
    by_type = {
        "text/csv": "csv",
        "application/json": "json",
        "application/x-ndjson": "ndjson",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    }
    found = by_type.get((content_type or "").split(";")[0].strip().lower())
    return FileFormat(found) if found else None


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


def safe_file_name(name: str | None) -> str:
    """A client's file name, kept only for display: no directories, no control characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = _SAFE_NAME.sub("_", base).strip(" .")
    return base[:200] or "upload"


# -- text: encoding and delimiter -----------------------------------------------------------


def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM), UTF-16 (BOM, or NUL-interleaved ASCII), else Latin-1.

    The whole file is checked as UTF-8, incrementally: a file that is UTF-8 for its first
    megabyte and Latin-1 later is Latin-1."""
    with path.open("rb") as f:
        head = f.read(4096)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        if len(head) >= 4:
            even, odd = head[0::2].count(0), head[1::2].count(0)
            if odd > len(head) // 4 and even == 0:
                return "utf-16-le"
            if even > len(head) // 4 and odd == 0:
                return "utf-16-be"
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            decoder.decode(head)
            while chunk := f.read(1_048_576):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "latin-1"
    return "utf-8"


def sniff_delimiter(header_line: str) -> str:
    """The candidate that splits the header line into the most fields, quotes respected."""
    best, best_count = ",", 1
    for candidate in DELIMITERS:
        fields = next(csv.reader([header_line], delimiter=candidate), [])
        if len(fields) > best_count:
            best, best_count = candidate, len(fields)
    return best


def _clean_headers(raw: list[Any]) -> list[str]:
    headers = [str(h).strip() if h is not None else "" for h in raw]
    if len(headers) > MAX_COLUMNS:
        raise FileRefused(f"The file has {len(headers)} columns; at most {MAX_COLUMNS} are read")
    if not any(headers):
        raise FileRefused("The first row must name the columns")
    seen: set[str] = set()
    for name in headers:
        if name and name.lower() in seen:
            raise FileRefused(f"Two columns are named {name[:50]!r}")
        seen.add(name.lower())
    return headers


def _open_text(path: Path, encoding: str) -> io.TextIOWrapper:
    return open(path, encoding=encoding, newline="", errors="strict")


def _first_record(text: io.TextIOBase) -> str:
    """The header record, which may itself contain quoted newlines."""
    line = text.readline()
    while line.count('"') % 2 and (more := text.readline()):
        line += more
    return line


def read_csv(path: Path, encoding: str, delimiter: str) -> tuple[list[str], Iterator[Row]]:
    text = _open_text(path, encoding)
    reader = csv.reader(text, delimiter=delimiter, strict=False)
    try:
        headers = _clean_headers(next(reader, []))
    except csv.Error as exc:
        text.close()
        raise FileRefused(f"The header row cannot be read as CSV: {exc}") from None

    def rows() -> Iterator[Row]:
        number = 1
        try:
            for cells in reader:
                number += 1
                if not any(c.strip() for c in cells):
                    yield number, {}
                elif len(cells) > len(headers) and any(c.strip() for c in cells[len(headers) :]):
                    yield number, f"{len(cells)} cells where the header names {len(headers)}"
                else:
                    yield number, dict(zip(headers, cells, strict=False))
        except csv.Error as exc:
            yield number + 1, f"the file cannot be read as CSV from here on: {exc}"
        except UnicodeDecodeError:
            yield number + 1, f"the file cannot be decoded as {encoding} from here on"
        finally:
            text.close()

    return headers, rows()


# -- JSON and NDJSON -------------------------------------------------------------------------


def read_json(path: Path) -> tuple[list[str], Iterator[Row]]:
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise FileRefused(f"The file is not valid JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        data = data["items"]
    if not isinstance(data, list):
        raise FileRefused('A JSON file holds an array of objects (or {"items": [...]})')
    headers = sorted({k for item in data[:1000] if isinstance(item, dict) for k in item})

    def rows() -> Iterator[Row]:
        for number, item in enumerate(data, start=1):
            yield number, item if isinstance(item, dict) else "not a JSON object"

    return headers, rows()


def read_ndjson(path: Path, encoding: str) -> tuple[list[str], Iterator[Row]]:
    headers: set[str] = set()
    with _open_text(path, encoding) as text:
        for _, line in zip(range(1000), text, strict=False):
            try:
                value = orjson.loads(line) if line.strip() else None
            except orjson.JSONDecodeError:
                continue
            if isinstance(value, dict):
                headers.update(value)

    def rows() -> Iterator[Row]:
        with _open_text(path, encoding) as text:
            try:
                yield from _ndjson_lines(text)
            except UnicodeDecodeError:
                yield 0, f"the file cannot be decoded as {encoding}"

    return sorted(headers), rows()


def _ndjson_lines(text: io.TextIOWrapper) -> Iterator[Row]:
    for number, line in enumerate(text, start=1):
        if not line.strip():
            yield number, {}
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            yield number, "this line is not valid JSON"
            continue
        yield number, value if isinstance(value, dict) else "not a JSON object"


# -- XLSX ------------------------------------------------------------------------------------


def check_xlsx(path: Path, max_uncompressed: int) -> None:
    """Refuse zip bombs and XML declarations from the zip's directory and each part's
    prolog, before any parser expands anything: bounded time and memory."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise FileRefused("The file is not an XLSX workbook (not a zip archive)") from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise FileRefused("The workbook has too many parts")
        names = {m.filename for m in members}
        if "xl/workbook.xml" not in names:
            raise FileRefused("The file is not an XLSX workbook (no xl/workbook.xml)")
        total = 0
        for member in members:
            total += member.file_size
            if total > max_uncompressed:
                raise FileRefused(
                    f"The workbook expands to more than {max_uncompressed} bytes", status=413
                )
            if member.file_size > 1_048_576 and member.file_size > MAX_ZIP_RATIO * max(
                member.compress_size, 1
            ):
                raise FileRefused(
                    "The workbook's compression ratio is implausible (a zip bomb?)", status=413
                )
        for member in members:
            if member.filename.endswith((".xml", ".rels", ".vml")):
                try:
                    with archive.open(member) as part:
                        prolog = part.read(_PROLOG_BYTES)
                except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError):
                    raise FileRefused("A part of the workbook cannot be read") from None
                if _DECLARATION.search(prolog):
                    raise FileRefused("The workbook declares XML entities or a DOCTYPE")


def cell_text(value: Any) -> Any:
    """Spreadsheet cells as the text a person typed: 4155550123.0 is "4155550123"."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return value


def read_xlsx(path: Path, max_uncompressed: int) -> tuple[list[str], Iterator[Row]]:
    headers, rows, _ = _open_xlsx(path, max_uncompressed)
    return headers, rows


def _open_xlsx(path: Path, max_uncompressed: int) -> tuple[list[str], Iterator[Row], int]:
    """The headers, the data rows and how many there are (blank ones included)."""
    check_xlsx(path, max_uncompressed)
    try:
        workbook = python_calamine.CalamineWorkbook.from_path(str(path))
        sheet = workbook.get_sheet_by_index(0)
    except Exception as exc:  # calamine's errors have no common base we can name
        raise FileRefused(f"The workbook cannot be read: {type(exc).__name__}") from None
    iterator = iter(sheet.iter_rows())
    first = next(iterator, None)
    if first is None:
        raise FileRefused("The workbook's first sheet is empty")
    headers = _clean_headers([cell_text(c) if c != "" else None for c in first])

    def rows() -> Iterator[Row]:
        for number, cells in enumerate(iterator, start=2):
            # Most cells are text: cell_text only for the others.
            values = [c if type(c) is str else cell_text(c) for c in cells]
            if not any(v not in ("", None) for v in values):
                yield number, {}
            else:
                yield number, dict(zip(headers, values, strict=False))

    return headers, rows(), sheet.height - 1


# -- one entry point -------------------------------------------------------------------------


def inspect(path: Path, fmt: FileFormat, max_uncompressed: int) -> Inspection:
    encoding = delimiter = None
    if fmt == FileFormat.xlsx:
        headers, _ = read_xlsx(path, max_uncompressed)
    else:
        encoding = detect_encoding(path)
        if fmt == FileFormat.csv:
            try:
                with _open_text(path, encoding) as text:
                    first = _first_record(text)
            except UnicodeDecodeError:
                raise FileRefused(f"The file cannot be decoded as {encoding}") from None
            delimiter = sniff_delimiter(first)
            headers = _clean_headers(next(csv.reader([first], delimiter=delimiter), []))
        elif fmt == FileFormat.json:
            headers, _ = read_json(path)
        else:
            headers, _ = read_ndjson(path, encoding)
    return Inspection(format=fmt, encoding=encoding, delimiter=delimiter, headers=headers)


def open_rows(path: Path, inspection: Inspection, max_uncompressed: int) -> Iterator[Row]:
    fmt = inspection.format
    if fmt == FileFormat.xlsx:
        return read_xlsx(path, max_uncompressed)[1]
    encoding = inspection.encoding or "utf-8"
    if fmt == FileFormat.csv:
        return read_csv(path, encoding, inspection.delimiter or ",")[1]
    if fmt == FileFormat.json:
        return read_json(path)[1]
    return read_ndjson(path, encoding)[1]


@contextmanager
def opened_rows(
    path: Path, inspection: Inspection, max_uncompressed: int
) -> Iterator[Iterator[Row]]:
    """open_rows(), closed (and its file with them) on the way out, however it is left.
    After a failure the reader waits in a reference cycle with the error's frames, and the
    collector may finalise its open file before it: a ResourceWarning, and a descriptor
    held until then."""
    rows = open_rows(path, inspection, max_uncompressed)
    try:
        yield rows
    finally:
        close = getattr(rows, "close", None)  # a reader of a JSON document is a list's
        if close is not None:
            close()


def read(path: Path, fmt: FileFormat, max_uncompressed: int) -> tuple[Inspection, Iterator[Row]]:
    """inspect() and open_rows() in one, reading a workbook once instead of twice."""
    if fmt == FileFormat.xlsx:
        headers, rows, _ = _open_xlsx(path, max_uncompressed)
        return Inspection(format=fmt, encoding=None, delimiter=None, headers=headers), rows
    inspection = inspect(path, fmt, max_uncompressed)
    return inspection, open_rows(path, inspection, max_uncompressed)


def survey(path: Path, fmt: FileFormat, max_uncompressed: int) -> tuple[Inspection, int]:
    """inspect() and count_rows() in one, reading a workbook once instead of twice."""
    if fmt == FileFormat.xlsx:
        headers, _, total = _open_xlsx(path, max_uncompressed)
        return Inspection(format=fmt, encoding=None, delimiter=None, headers=headers), total
    inspection = inspect(path, fmt, max_uncompressed)
    return inspection, count_rows(path, inspection, max_uncompressed)


def count_rows(path: Path, inspection: Inspection, max_uncompressed: int) -> int:
    """Data rows, blank ones included: what progress is measured against."""
    with opened_rows(path, inspection, max_uncompressed) as rows:
        return sum(1 for _ in rows)
