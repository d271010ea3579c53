"""Shaping file rows into the API's input: mapped columns, defaults, typed cells."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from custos.bulk.exporter import restore
from custos.bulk.formats import cell_text

# Fields that are text in the API: numbers from a spreadsheet or JSON become their text.
TEXT_FIELDS = frozenset(
    {
        "id",
        "external_id",
        "email",
        "full_name",
        "first_name",
        "last_name",
        "phone",
        "company",
        "customer_type",
        "status",
        "customer_id",
        "customer_external_id",
        "customer_email",
        "feedback_type",
        "subject",
        "content",
        "source",
        "received_at",
    }
)


class RowProblem(Exception):
    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def clean(value: Any) -> Any:
    value = cell_text(value)
    if isinstance(value, str):
        value = restore(value.strip())
        return value or None
    return value


def split_tags(value: Any) -> list[Any]:
    """A list (JSON), a JSON array in a cell, or text separated by |, ; or , (the first of
    those present)."""
    if isinstance(value, list):
        return value
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise RowProblem("tags", "not a JSON array") from None
        if not isinstance(parsed, list):
            raise RowProblem("tags", "not a JSON array")
        return parsed
    for separator in "|;,":
        if separator in text:
            return [t.strip() for t in text.split(separator) if t.strip()]
    return [text]


def _metadata(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        parsed = orjson.loads(str(value))
    except orjson.JSONDecodeError:
        raise RowProblem("metadata", "not a JSON object") from None
    if not isinstance(parsed, dict):
        raise RowProblem("metadata", "not a JSON object")
    return parsed


def _holds_nul(value: Any) -> bool:
    if type(value) is str:
        return "\x00" in value
    pending = [value]  # nested JSON values, walked without recursion: depth is the sender's
    while pending:
        current = pending.pop()
        if isinstance(current, str):
            if "\x00" in current:
                return True
        elif isinstance(current, dict):
            pending.extend(current)
            pending.extend(current.values())
        elif isinstance(current, list):
            pending.extend(current)
    return False


_PLAIN, _TEXT, _ADDRESS, _EXTRA, _TAGS, _METADATA = range(6)
_KINDS: dict[str, int] = {}


def _kind(field: str) -> int:
    kind = _KINDS.get(field)
    if kind is None:
        if field.startswith("address."):
            kind = _ADDRESS
        elif field.startswith("metadata."):
            kind = _EXTRA
        elif field == "tags":
            kind = _TAGS
        elif field == "metadata":
            kind = _METADATA
        else:
            kind = _TEXT if field in TEXT_FIELDS else _PLAIN
        _KINDS[field] = kind
    return kind


def shape(
    values: Mapping[str, Any], mapping: Mapping[str, str], defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """Column values -> the API's input for one item (absent and empty cells left out)."""
    fields: dict[str, Any] = {}
    for column, field in mapping.items():
        value = values.get(column)
        if type(value) is str:  # CSV cells: clean() without its type checks
            value = value.strip()
            if value[:1] == "'":
                value = restore(value)
            if value:
                fields[field] = value
        elif value is not None:
            value = clean(value)
            if value is not None:
                fields[field] = value
    for field, value in defaults.items():
        if fields.get(field) is None and value not in (None, ""):
            fields[field] = value
    for field, value in fields.items():
        if _holds_nul(value):
            raise RowProblem(field, "holds the NUL character (U+0000), which is not stored")
    item: dict[str, Any] = {}
    address: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for field, value in fields.items():
        kind = _kind(field)
        if kind == _TEXT:
            item[field] = value if isinstance(value, str) else str(value)
        elif kind == _PLAIN:
            item[field] = value
        elif kind == _ADDRESS:
            address[field[8:]] = value if isinstance(value, str) else str(value)
        elif kind == _EXTRA:
            extra[field[9:]] = value
        elif kind == _TAGS:
            item["tags"] = split_tags(value)
        else:
            item["metadata"] = _metadata(value)
    if address:
        item["address"] = address
    if extra:
        item["metadata"] = {**item.get("metadata", {}), **extra}
    first, last = item.pop("first_name", None), item.pop("last_name", None)
    if "full_name" not in item and (first or last):
        item["full_name"] = " ".join(p for p in (first, last) if p)
    return item
