"""`Email` answers exactly as pydantic's `EmailStr`: same values, same errors."""

from __future__ import annotations

import random
import string
from typing import Any

import pytest
from pydantic import EmailStr, TypeAdapter, ValidationError

from custos.kit.email import Email, normalise

LIBRARY: TypeAdapter[Any] = TypeAdapter(EmailStr | None)
FAST: TypeAdapter[Any] = TypeAdapter(Email | None)
TLDS = ["com", "org", "io", "co", "uk", "COM", "test", "local", "arpa", "onion", "invalid",
        "localhost", "internal", "example", "c", "co1", "1com", "xn--p1ai", "", "a" * 63,
        "a" * 64]  # fmt: skip


def _outcome(adapter: TypeAdapter[Any], value: Any) -> tuple[str, Any]:
    try:
        return "valid", adapter.validate_python(value)
    except ValidationError as exc:
        return "invalid", exc.errors(include_url=False)


def _address(rnd: random.Random) -> str:
    """Mostly plausible addresses, with the edge cases the fast path must leave alone."""
    extra = rnd.choice(["", "", "!#$%&'*/=?^`{|}~", '"() ,:;<>@[]\\', "éÄΩ", "."])
    local = "".join(
        rnd.choice(string.ascii_letters + string.digits + "._+-" + extra)
        for _ in range(rnd.choice([0, 1, 2, 8, 20, 63, 64, 65]))
    )
    if rnd.random() < 0.05:
        local = rnd.choice(["Info", "POSTMASTER", "support", "Www"])
    labels = [
        "".join(
            rnd.choice(string.ascii_letters + string.digits + "-" + rnd.choice(["", "", "_é"]))
            for _ in range(rnd.choice([0, 1, 2, 5, 12, 62, 63, 64]))
        )
        for _ in range(rnd.randint(0, 4))
    ]
    address = (
        local + rnd.choice(["@", "@", "@", "@", "", "@@"]) + ".".join([*labels, rnd.choice(TLDS)])
    )
    if rnd.random() < 0.05:
        address = rnd.choice([" ", "\n", "<"]) + address
    if rnd.random() < 0.05:
        address = address.replace("-", "--")
    return address


def test_generated_addresses_get_the_librarys_answer() -> None:
    rnd = random.Random(20261205)
    fast = 0
    for _ in range(30_000):
        address = _address(rnd)
        fast += normalise(address) is not None
        assert _outcome(FAST, address) == _outcome(LIBRARY, address), address
    assert fast > 500  # the fast path was really taken


@pytest.mark.parametrize(
    "value",
    [
        "person1@example.com",
        "Person.One+tag@Sub.Example.CO.UK",
        "Info@Example.com",
        "a..b@example.com",
        ".a@example.com",
        "a@example",
        "a@localhost.localhost",
        "a@foo.test",
        "a@xn--bcher-kva.example",
        "a@ex--ample.com",
        "a@-example.com",
        "a@example.c0m",
        "Jane <jane@example.com>",
        " jane@example.com ",
        "jäne@example.com",
        "x" * 64 + "@example.com",
        "x" * 65 + "@example.com",
        b"bytes@example.com",
        5,
        None,
    ],
)
def test_edge_cases_match(value: Any) -> None:
    assert _outcome(FAST, value) == _outcome(LIBRARY, value)


def test_json_schema_is_unchanged() -> None:
    assert FAST.json_schema() == LIBRARY.json_schema()
