"""Identifiers: an IdRun's ids are each value's own encoding, in order, across blocks."""

from __future__ import annotations

from custos.kit import ids


def test_a_run_is_consecutive_values_encoded_one_by_one() -> None:
    run = ids.IdRun("cus")
    run.next = (run.next | 1023) - 5  # six ids before a carry into the next-to-last pair
    start = run.next
    taken = run.take(3) + run.take(2000)
    assert taken == [f"cus_{ids._encode(v)}" for v in range(start, start + 2003)]
    assert taken == sorted(taken)
    assert len(set(taken)) == 2003
    assert all(ids.is_valid_id(i, "cus") for i in taken)
    assert run.take(0) == []


def test_new_ids_sort_in_the_order_given() -> None:
    made = ids.new_ids("evt", 1500)
    assert made == sorted(made)
    assert len(set(made)) == 1500
