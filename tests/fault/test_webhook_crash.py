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
    # Written over about 10 s, so the workers are killed several times while they deliver.
    # Each kill resends only what the killed worker had in flight (a few messages), so the
    # ratio depends little on the run's length; 3,000 events keep its spread well below the
    # bound (0.1 to 0.5 % in repeated runs on a shared 2-core machine).
    report = await crash_run(settings, events=3000, workers=2, seed=7, timeout=90, per_second=300)
    print_report(report)
    assert report["kills"] >= 4, "the run was too short to kill anything"
    assert report["lost"] == 0
    assert report["delivered"] == report["events"]
    assert report["deliveries_recorded_more_than_once"] == 0
    # No message sent by two live runs: a job is run again only once its worker is dead.
    assert report["answers_recorded_twice"] == 0
    assert report["duplicate_ratio"] <= 0.01
