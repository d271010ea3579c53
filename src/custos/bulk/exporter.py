"""Writing exports: CSV, JSON and XLSX, with spreadsheet formula injection neutralised."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import orjson
from openpyxl import Workbook

from custos.bulk.mapping import ADDRESS_PARTS
from custos.bulk.schemas import ExportFormat, Resource
from custos.exceptions import InvalidInput

EXPORT_FIELDS: dict[Resource, tuple[str, ...]] = {
    Resource.customers: (
        "id",
        "external_id",
        "email",
        "full_name",
        "phone",
        "phone_e164",
        "company",
        *(f"address.{part}" for part in ADDRESS_PARTS),
        "customer_type",
        "status",
        "tags",
        "metadata",
        "order_count",
        "total_order_value",
        "currency",
        "complaint_count",
        "last_order_at",
        "created_at",
        "updated_at",
    ),
    Resource.feedback: (
        "id",
        "customer_id",
        "feedback_type",
        "subject",
        "content",
        "source",
        "rating",
        "status",
        "tags",
        "metadata",
        "received_at",
        "sentiment_score",
        "sentiment_label",
        "duplicate_of_id",
        "duplicate_kind",
        "created_at",
        "updated_at",
    ),
}

# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """Prefix a would-be formula with an apostrophe, which spreadsheets show as text."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def restore(text: str) -> str:
    """The inverse on import, so an export imported again gives back the same values."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) else text


def check_fields(resource: Resource, fields: list[str] | None) -> list[str]:
    known = EXPORT_FIELDS[resource]
    if not fields:
        return list(known)
    unknown = [f for f in fields if f not in known]
    if unknown or len(set(fields)) != len(fields):
        raise InvalidInput(
            f"Fields must be distinct and among {', '.join(known)}",
            errors=[{"loc": ["body", "fields"], "msg": "unknown or repeated field"}],
        )
    return fields


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def record(obj: Any, fields: list[str]) -> dict[str, Any]:
    """One ORM row as flat export values (native types)."""
    out: dict[str, Any] = {}
    for name in fields:
        if name.startswith("address."):
            address = obj.address or {}
            out[name] = address.get(name[8:])
        elif name == "metadata":
            out[name] = obj.attributes
        else:
            value = getattr(obj, name)
            if isinstance(value, datetime):
                value = _iso(value)
            elif isinstance(value, Decimal):
                value = str(value)
            out[name] = value
    return out


def text_cell(value: Any) -> Any:
    """A value as a spreadsheet cell: text neutralised, lists and objects as text."""
    if value is None:
        return ""
    if isinstance(value, list):
        if all(isinstance(v, str) and "|" not in v for v in value):
            value = "|".join(value)
        else:
            value = orjson.dumps(value).decode()
    elif isinstance(value, dict):
        value = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    elif isinstance(value, bool | int | float):
        return value
    return neutralise(str(value))


class Writer:
    def __init__(self, fmt: ExportFormat, path: Path, fields: list[str]) -> None:
        self.fmt = fmt
        self.fields = fields
        self.path = path
        self._file: IO[Any] | None = None
        self._first = True
        if fmt == ExportFormat.xlsx:
            self._book = Workbook(write_only=True)
            self._sheet = self._book.create_sheet("export")
            self._sheet.append(fields)
        elif fmt == ExportFormat.csv:
            self._file = path.open("w", encoding="utf-8", newline="")
            self._csv = csv.writer(self._file, lineterminator="\r\n")
            self._csv.writerow(fields)
        else:
            self._file = path.open("wb")
            self._file.write(b"[")

    def write(self, records: Iterable[Mapping[str, Any]]) -> None:
        for rec in records:
            if self.fmt == ExportFormat.json:
                assert self._file is not None
                self._file.write((b"\n" if self._first else b",\n") + orjson.dumps(rec))
                self._first = False
                continue
            cells = [text_cell(rec[f]) for f in self.fields]
            if self.fmt == ExportFormat.csv:
                self._csv.writerow(cells)
            else:
                self._sheet.append(cells)

    def close(self) -> None:
        if self.fmt == ExportFormat.xlsx:
            self._book.save(self.path)
            return
        assert self._file is not None
        if self.fmt == ExportFormat.json:
            self._file.write(b"\n]\n" if not self._first else b"]\n")
        self._file.close()
