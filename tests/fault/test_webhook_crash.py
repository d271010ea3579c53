"""The crash test in its short form (the full one: `python -m tests.fault.webhook_crash`):
events fanned out to a receiver while worker processes are killed with SIGKILL every 0.5
to 1.5 s. Nothing may be lost; duplicates are counted by `webhook-id`."""

from __future__ import annotations

import pytest

from custos.config import Settings
from tests.fault.webhook_crash import crash_run, print_report


async def test_no_event_is_lost_while_workers_are_killed(settings: Settings) -> None:
    if not settings.is_postgres:
        pytest.skip("worker processes share a PostgreSQL queue; SQLite runs jobs in-process")
    # Written over about 8 s, so the workers are killed several times while they deliver.
    report = await crash_run(settings, events=600, workers=2, seed=7, timeout=90, per_second=75)
    print_report(report)
    assert report["kills"] >= 4, "the run was too short to kill anything"
    assert report["lost"] == 0
    assert report["delivered"] == report["events"]
    assert report["deliveries_recorded_more_than_once"] == 0
    # The full run holds duplicates to 1 %; a run this short on a shared machine varies
    # more, so its bound is looser (a broken claim or recovery resends far more than this).
    assert report["duplicate_ratio"] <= 0.1
