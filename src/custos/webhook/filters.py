"""Which events an endpoint receives: type patterns, then conditions on payload fields.

A filter is a JSON object of conditions, all of which must hold:

    {"customer.status": "active",                 # equality
     "customer.tags": {"contains": "vip"},        # one operator per path
     "changed_fields": {"contains": "email"},
     "customer.order_count": {"gte": 3}}

Paths are dotted keys into the event's `data`. Operators: eq, ne, in, not_in (a list),
contains (a list or string holding the value), exists (true/false), gt, gte, lt, lte
(numbers, or strings compared as text, which suits ISO-8601 timestamps).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MAX_CONDITIONS = 20
MAX_PATH_PARTS = 10
MAX_LIST = 100
OPERATORS = frozenset({"eq", "ne", "in", "not_in", "contains", "exists", "gt", "gte", "lt", "lte"})

_PATTERN = re.compile(
    r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\.\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)$"
)
_PATH_PART = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MISSING = object()
Scalar = str | int | float | bool | None


def check_pattern(pattern: str) -> str:
    if len(pattern) > 64 or not _PATTERN.match(pattern):
        raise ValueError(
            f"{pattern!r} is not an event type or pattern (`customer.created`, `customer.*`, `*`)"
        )
    return pattern


def pattern_matches(pattern: str, event_type: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def type_wanted(patterns: list[str], event_type: str) -> bool:
    return any(pattern_matches(p, event_type) for p in patterns)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def check_filter(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if len(value) > MAX_CONDITIONS:
        raise ValueError(f"a filter has at most {MAX_CONDITIONS} conditions")
    for path, condition in value.items():
        parts = path.split(".")
        if len(parts) > MAX_PATH_PARTS or not all(_PATH_PART.match(p) for p in parts):
            raise ValueError(f"{path!r} is not a dotted field path")
        if isinstance(condition, dict):
            if len(condition) != 1 or next(iter(condition)) not in OPERATORS:
                names = ", ".join(sorted(OPERATORS))
                raise ValueError(f"the condition on {path!r} needs exactly one of: {names}")
            operator, operand = next(iter(condition.items()))
            if operator in ("in", "not_in"):
                if not isinstance(operand, list) or len(operand) > MAX_LIST:
                    raise ValueError(f"{operator} on {path!r} takes a list of at most {MAX_LIST}")
                if not all(_is_scalar(item) for item in operand):
                    raise ValueError(f"{operator} on {path!r} takes plain values")
            elif operator == "exists":
                if not isinstance(operand, bool):
                    raise ValueError(f"exists on {path!r} takes true or false")
            elif not _is_scalar(operand) or (
                operator in ("gt", "gte", "lt", "lte")
                and (operand is None or isinstance(operand, bool))
            ):
                raise ValueError(f"{operator} on {path!r} takes a plain value")
            if isinstance(operand, str) and len(operand) > 1000:
                raise ValueError(f"the value for {path!r} is too long")
        elif not _is_scalar(condition):
            raise ValueError(f"the condition on {path!r} is a value or an operator object")
    return value


def _lookup(data: Mapping[str, Any], path: str) -> Any:
    current: Any = data
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return _MISSING
        current = current[part]
    return current


def _compare(operator: str, value: Any, operand: Any) -> bool:
    numbers = (int, float)
    if isinstance(value, bool) or isinstance(operand, bool):
        return False
    if isinstance(value, numbers) and isinstance(operand, numbers):
        pass
    elif not (isinstance(value, str) and isinstance(operand, str)):
        return False
    if operator == "gt":
        return bool(value > operand)
    if operator == "gte":
        return bool(value >= operand)
    if operator == "lt":
        return bool(value < operand)
    return bool(value <= operand)


def _equal(a: Any, b: Any) -> bool:
    # JSON's true is not 1, whatever Python thinks.
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def _holds(value: Any, condition: Any) -> bool:
    if not isinstance(condition, dict):
        return value is not _MISSING and _equal(value, condition)
    operator, operand = next(iter(condition.items()))
    if operator == "exists":
        return (value is not _MISSING) is operand
    if value is _MISSING:
        return operator in ("ne", "not_in")
    if operator == "eq":
        return _equal(value, operand)
    if operator == "ne":
        return not _equal(value, operand)
    if operator == "in":
        return _is_scalar(value) and any(_equal(value, item) for item in operand)
    if operator == "not_in":
        return not (_is_scalar(value) and any(_equal(value, item) for item in operand))
    if operator == "contains":
        if isinstance(value, list):
            return any(_equal(item, operand) for item in value)
        return isinstance(value, str) and isinstance(operand, str) and operand in value
    return _compare(operator, value, operand)


def payload_matches(filter_: Mapping[str, Any] | None, data: Mapping[str, Any]) -> bool:
    if not filter_:
        return True
    return all(_holds(_lookup(data, path), condition) for path, condition in filter_.items())
