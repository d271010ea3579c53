"""The background loop of the batch writers: stopping waits for a call under way."""

from __future__ import annotations

import asyncio

from custos.kit.periodic import Periodic


async def test_stop_lets_a_call_under_way_finish_and_makes_no_more() -> None:
    started, finished, calls = asyncio.Event(), asyncio.Event(), []

    async def flush() -> None:
        calls.append(1)
        started.set()
        await asyncio.sleep(0.2)  # a transaction, say: cancelling it here is what must not happen
        finished.set()

    loop = Periodic("test", 0.01, flush)
    loop.start()
    await asyncio.wait_for(started.wait(), 5)
    await loop.stop()
    assert finished.is_set()
    made = len(calls)
    await asyncio.sleep(0.05)
    assert len(calls) == made == 1


async def test_a_stopped_loop_can_start_again() -> None:
    calls: list[int] = []

    async def flush() -> None:
        calls.append(1)

    loop = Periodic("test", 0.01, flush)
    loop.start()
    await loop.stop()
    before = len(calls)
    loop.start()
    await asyncio.sleep(0.1)
    await loop.stop()
    assert len(calls) > before


def test_full_collections_are_deferred_while_any_holder_is_inside() -> None:
    import gc

    from custos.kit.gcpause import full_collections_deferred

    before = gc.get_threshold()
    with full_collections_deferred():
        deferred = gc.get_threshold()
        with full_collections_deferred():
            assert gc.get_threshold() == deferred
        assert gc.get_threshold() == deferred  # an overlapping holder is still inside
    assert gc.get_threshold() == before
    assert deferred[:2] == before[:2]
    assert deferred[2] > 10**9


def test_settling_freezes_what_start_up_made_and_raises_the_young_threshold() -> None:
    import gc

    from custos.kit.gcpause import YOUNG_THRESHOLD, settle_after_start_up

    before = gc.get_threshold()
    made_at_start_up = [[n] for n in range(1_000)]  # lists: always tracked
    assert all(gc.is_tracked(o) for o in made_at_start_up)
    try:
        settle_after_start_up()
        assert gc.get_freeze_count() >= len(made_at_start_up)
        # Frozen: no collection visits them (nor lists them) any more.
        tracked = {id(o) for o in gc.get_objects()}
        assert not any(id(o) in tracked for o in made_at_start_up)
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:])
        made_later = [-1]
        assert gc.is_tracked(made_later)
        assert id(made_later) in {id(o) for o in gc.get_objects()}
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
