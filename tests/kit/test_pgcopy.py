"""COPY's text format: a Template's line must be exactly the line of all its values."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from custos.kit import pgcopy

VALUES: list[Any] = [
    None,
    "",
    "plain",
    "tab\there",
    "new\nline",
    "cr\rhere",
    "back\\slash",
    "\\N",
    "ünïcødé 🙂",
    0,
    -7,
    2**70,
    True,
    False,
    Decimal("0.00"),
    Decimal("12.34"),
    datetime(2026, 12, 5, 6, 0, tzinfo=UTC),
    {"a": 1, "b": "x\ty"},
    ["vip", "gold"],
    {},
]


@pytest.mark.parametrize("seed", range(20))
def test_a_template_line_is_the_line_of_every_value(seed: int) -> None:
    rnd = random.Random(seed)
    columns = [f"c{n}" for n in range(rnd.randint(1, 12))]
    shared_columns = [c for c in columns if rnd.random() < 0.5]
    shared = {c: rnd.choice(VALUES) for c in shared_columns}
    template = pgcopy.Template(columns, shared)
    assert template.varying == tuple(c for c in columns if c not in shared)
    for _ in range(5):
        row = {**{c: rnd.choice(VALUES) for c in columns}, **shared}
        assert template.line(row) == pgcopy.line(row[c] for c in columns)


def test_a_template_reads_only_the_varying_columns() -> None:
    template = pgcopy.Template(["id", "tenant", "at"], {"tenant": "ten_1", "at": None})
    assert template.line({"id": "a\tb"}) == "a\\tb\tten_1\t\\N\n"
    everything_shared = pgcopy.Template(["x", "y"], {"x": 1, "y": "z"})
    assert everything_shared.line({}) == "1\tz\n"
