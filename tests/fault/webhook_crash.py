"""Crash test: events fanned out to a receiver while `custos worker` processes are killed.

N events (default 10,000) are written in transactions of 1 to 5 by 4 concurrent writers, and
fanned out to one webhook endpoint on a receiver process on 127.0.0.1, by 2 `custos worker`
processes of which one, chosen at random, is sent SIGKILL every 0.5 to 1.5 s and started
again, until every event has arrived. Then: every event must have been received at least
once (0 lost) and at most 1 % of messages may be duplicates (counted by `webhook-id`).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python -m tests.fault.webhook_crash [--events 10000 --workers 2 --seed 1]

Workers run as `custos worker --processes 2`: the killed process is replaced by its
supervisor, which hands its jobs to the replacement at once. `--cold` kills whole `custos
worker` processes instead and starts them again from cold (seconds of imports each time).
`--env NAME=VALUE` passes settings to the workers; `CRASH_WORKER_LOG=path` keeps their log.

A database is created for the run and dropped after. The last line of output is one JSON
object with every figure; the exit status is 1 if an event was lost or duplicates passed 1 %.
A duplicate is a message the receiver had (or was about to have) when its worker died, before
its answer was recorded: a message keeps its turn until then (docs/decisions/0065), so each
kill resends what the killed worker had in flight, about (its messages per second) x (the time
from receipt to record). `answers_recorded_twice` counts messages sent by two live runs.
`tests/fault/test_webhook_crash.py` runs a short form of this in the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import sys
import tempfile
import time
from collections import Counter
from typing import IO, Any

import sqlalchemy as sa

from custos.config import Settings
from custos.kit.scratch import throwaway_database
from custos.migrate import upgrade
from custos.models import WebhookAttempt, WebhookDelivery
from custos.runtime import Runtime
from custos.tenant import service as tenant_service
from custos.tenant.schemas import TenantCreate
from tests.fault.harness import (
    UNLIMITED,
    Workers,
    keep_killing,
    process_env,
    produce,
    receipts,
    receiver_process,
    subscribe,
)


async def make_tenant(runtime: Runtime) -> str:
    slug = f"crash-{secrets.token_hex(4)}"
    async with runtime.db.transaction(system=True) as session:
        tenant = await tenant_service.create(
            runtime,
            session,
            None,
            TenantCreate(name="Crash test", slug=slug),  # type: ignore[call-arg]
        )
    return tenant.id


async def crash_run(
    settings: Settings,
    *,
    events: int,
    workers: int = 2,
    seed: int = 1,
    timeout: float = 900,
    kill: bool = True,
    supervised: bool = True,
    env: dict[str, str] | None = None,
    per_second: float | None = None,
) -> dict[str, Any]:
    rng = random.Random(seed)
    runtime = Runtime.build(settings)
    await runtime.start()
    keep = os.environ.get("CRASH_WORKER_LOG")  # a path: keep the workers' log there
    log = open_log(keep)
    try:
        tenant_id = await make_tenant(runtime)
        with receiver_process() as url:
            await subscribe(runtime, tenant_id, f"{url}/crash", event_types=["event.test"])
            pool = Workers(
                process_env(settings, **(env or {})), workers, log, supervised=supervised
            )
            stop = asyncio.Event()
            killer = asyncio.create_task(keep_killing(pool, stop, rng)) if kill else None
            started = time.monotonic()
            try:
                made = await produce(runtime, tenant_id, events, rng, per_second=per_second)
                produced_after = time.monotonic() - started
                wanted = set(made)
                while True:
                    got = {i for i, _ in await asyncio.to_thread(receipts, url)}
                    if wanted <= got or time.monotonic() - started > timeout:
                        break
                    await asyncio.sleep(0.5)
                elapsed = time.monotonic() - started
            finally:
                stop.set()
                if killer is not None:
                    await killer
                await asyncio.to_thread(pool.stop)
            final = await asyncio.to_thread(receipts, url)
            attempts = await _attempt_counts(runtime, tenant_id)
            twice = await _answers_recorded_twice(runtime, tenant_id)
    finally:
        await runtime.stop()
        log.close()
    counts = Counter(i for i, _ in final if i in wanted)
    first_seen: dict[str, float] = {}
    for event_id, at in final:
        first_seen[event_id] = min(at, first_seen.get(event_id, at))
    # How long before the nearest kill each duplicated message had first arrived: the window
    # between a receiver's answer and its record.
    start_at = min(first_seen.values(), default=0.0)
    timeline = Counter(int((t - start_at) // 10) for e, t in first_seen.items() if e in wanted)
    gaps = sorted(
        min((k - first_seen[e] for k in pool.kill_times if k >= first_seen[e]), default=-1.0)
        for e, n in counts.items()
        if n > 1
    )
    received = sum(counts.values())
    duplicates = received - len(counts)
    return {
        "events": len(wanted),
        "delivered": len(counts),
        "lost": len(wanted - set(counts)),
        "messages_received": received,
        "duplicates": duplicates,
        "duplicate_ratio": round(duplicates / max(1, len(wanted)), 5),
        "workers": workers,
        "restarted_by": "supervisor (fork)" if supervised else "harness (cold start)",
        "kills": pool.kills,
        "seconds": round(elapsed, 1),
        "seconds_to_write_events": round(produced_after, 1),
        "deliveries_per_second": round(len(counts) / elapsed, 1) if elapsed else 0.0,
        # What the delivery log says: messages recorded once each, and the rest.
        "deliveries_recorded_once": attempts.get(1, 0),
        "deliveries_recorded_more_than_once": sum(v for k, v in attempts.items() if k > 1),
        # One attempt recorded by two runs at once (a job run again while its first run was
        # alive, a claim that expired under a sender): never a crash's doing.
        "answers_recorded_twice": twice,
        "duplicate_arrived_before_kill_ms_p50": round(gaps[len(gaps) // 2] * 1000)
        if gaps
        else None,
        "duplicate_arrived_before_kill_ms_max": round(gaps[-1] * 1000) if gaps else None,
        "delivered_per_10_s": [timeline[i] for i in range(max(timeline, default=-1) + 1)],
    }


async def _attempt_counts(runtime: Runtime, tenant_id: str) -> dict[int, int]:
    async with runtime.db.transaction(tenant_id=tenant_id, write=False) as session:
        rows = await session.execute(
            sa.select(WebhookDelivery.attempts, sa.func.count())
            .where(WebhookDelivery.tenant_id == tenant_id)
            .group_by(WebhookDelivery.attempts)
        )
        return {int(a): int(n) for a, n in rows}


async def _answers_recorded_twice(runtime: Runtime, tenant_id: str) -> int:
    async with runtime.db.transaction(tenant_id=tenant_id, write=False) as session:
        repeated = (
            sa.select(WebhookAttempt.delivery_id)
            .where(WebhookAttempt.tenant_id == tenant_id)
            .group_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
            .having(sa.func.count() > 1)
            .subquery()
        )
        found = await session.execute(sa.select(sa.func.count()).select_from(repeated))
        return int(found.scalar_one())


def open_log(path: str | None) -> IO[bytes]:
    if path:
        return open(path, "wb")
    return tempfile.TemporaryFile(prefix="crash-workers-")


def passed(report: dict[str, Any]) -> bool:
    return report["lost"] == 0 and report["duplicate_ratio"] <= 0.01


def print_report(report: dict[str, Any]) -> None:
    print("Crash test: webhook deliveries with workers killed by SIGKILL")
    print("(shared 2-core machine; figures vary with the load others put on it)")
    for name, value in report.items():
        print(f"  {name:<26} {value}")
    print("PASS" if passed(report) else "FAIL: events lost or more than 1 % duplicates")
    print(json.dumps(report))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument(
        "--no-kill", action="store_true", help="the same run without killing (a baseline)"
    )
    parser.add_argument(
        "--env", action="append", default=[], help="NAME=VALUE for the workers (repeatable)"
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="kill whole `custos worker` processes and start them again from cold",
    )
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        os.environ["DATABASE_URL"] = "postgresql://postgres@127.0.0.1:5432/postgres"
    with throwaway_database("custos-crash") as url:
        settings = Settings(
            environment="test",
            secret_key=secrets.token_urlsafe(48),
            database_url=url,
            log_level="ERROR",
            **UNLIMITED,
            webhook_allowed_hosts=["127.0.0.1"],
        )
        upgrade(settings)
        report = asyncio.run(
            crash_run(
                settings,
                events=args.events,
                workers=args.workers,
                seed=args.seed,
                timeout=args.timeout,
                kill=not args.no_kill,
                supervised=not args.cold,
                env=dict(item.split("=", 1) for item in args.env),
            )
        )
    print_report(report)
    sys.exit(0 if passed(report) else 1)


if __name__ == "__main__":
    main()
