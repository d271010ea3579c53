"""Benchmark: webhook deliveries per second with 1 and 2 `custos worker` processes, and the
time from an event's commit to its receipt.

Custos runs on PostgreSQL (a database created for the run and dropped after). A receiver on
127.0.0.1, in its own process, answers 204 to every message and notes its `webhook-id` and
arrival time. For each number of workers:

- throughput: N events (default 3,000) are committed first, one per transaction as API
  writes make them, for one endpoint; then the workers start, and deliveries per second are
  counted from the first message received to the last (start-up not included);
- latency: with the workers running and idle, events are committed one per transaction at a
  steady rate (default 50 a second for 10 s); commit-to-receipt p50 and p95.

Baseline, in the same run: the receiver's own rate for plain POSTs from one process (httpx,
32 at a time), so the figures can be read as a share of what the receiver and the loopback
interface allow on this machine at this moment.

Targets (reported, not asserted): >= 300 deliveries/s with 2 workers; p95 < 1 s on an idle
system. This machine is shared with other work, so absolute figures vary between runs.

Usage: python bench/webhooks.py [--events 3000 --rate 50 --seconds 10 --concurrency 16]
The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fault.harness import (
    Workers,
    process_env,
    produce,
    receipts,
    receiver_process,
    subscribe,
)
from tests.fault.webhook_crash import make_tenant

from _common import (
    BenchError,
    bench_settings,
    exit_cleanly_on_sigterm,
    median,
    percentile,
    process_tree_cpu_seconds,
)
from custos.kit.scratch import throwaway_database
from custos.migrate import upgrade
from custos.runtime import Runtime


async def baseline(url: str, requests: int = 3000, concurrency: int = 32) -> float:
    """Plain POSTs per second to the receiver, from one process."""
    body = json.dumps({"id": "evt_x", "data": {"message": "baseline"}}).encode()
    done = 0
    started = time.perf_counter()
    async with httpx.AsyncClient(trust_env=False) as client:

        async def one() -> None:
            nonlocal done
            while done < requests:
                done += 1
                await client.post(f"{url}/baseline", content=body, headers={"webhook-id": "b"})

        await asyncio.gather(*(one() for _ in range(concurrency)))
    return requests / (time.perf_counter() - started)


async def wait_for(url: str, wanted: set[str], timeout: float) -> list[tuple[str, float]]:
    deadline = time.monotonic() + timeout
    while True:
        got = [r for r in await asyncio.to_thread(receipts, url) if r[0] in wanted]
        if {i for i, _ in got} >= wanted:
            return got
        if time.monotonic() > deadline:
            raise BenchError(f"only {len({i for i, _ in got})} of {len(wanted)} arrived")
        await asyncio.sleep(0.2)


async def one_round(
    runtime: Runtime, url: str, workers: int, args: argparse.Namespace
) -> dict[str, Any]:
    rng = random.Random(workers)
    tenant_id = await make_tenant(runtime)
    await subscribe(runtime, tenant_id, f"{url}/w{workers}", event_types=["event.test"])
    backlog = await produce(runtime, tenant_id, args.events, rng, producers=4, batch=1)
    env = process_env(
        runtime.settings,
        CUSTOS_WORKER_CONCURRENCY=str(args.concurrency),
        CUSTOS_LOG_LEVEL="ERROR",
        # Nothing is killed here: the production defaults.
        CUSTOS_WORKER_HEARTBEAT_SECONDS="5",
        CUSTOS_WORKER_STALLED_AFTER_SECONDS="30",
    )
    pool = Workers(env, workers)
    try:
        cpu_before = sum(process_tree_cpu_seconds(p.pid) or 0.0 for p in pool.processes)
        got = await wait_for(url, set(backlog), timeout=600)
        cpu_after = sum(process_tree_cpu_seconds(p.pid) or 0.0 for p in pool.processes)
        times = sorted(t for _, t in got)
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0

        # Latency: the workers are running and the backlog is gone.
        commits: dict[str, float] = {}
        total = int(args.rate * args.seconds)
        steady = await produce(
            runtime,
            tenant_id,
            total,
            rng,
            producers=2,
            batch=1,
            commit_times=commits,
            per_second=args.rate,
        )
        arrived = await wait_for(url, set(steady), timeout=120)
        first_arrival: dict[str, float] = {}
        for event_id, at in arrived:
            first_arrival[event_id] = min(at, first_arrival.get(event_id, at))
        latencies = sorted(first_arrival[e] - commits[e] for e in steady)
    finally:
        pool.stop()
    return {
        "workers": workers,
        "deliveries": len(times),
        "deliveries_per_s": round(rate, 1),
        "worker_cpu_ms_per_delivery": round((cpu_after - cpu_before) * 1000 / len(times), 2),
        "latency_events": len(latencies),
        "latency_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "latency_p95_ms": round(percentile(latencies, 95) * 1000, 1),
        "latency_max_ms": round(latencies[-1] * 1000, 1),
    }


async def run(database_url: str, args: argparse.Namespace) -> dict[str, Any]:
    settings = bench_settings(
        database_url, webhook_allowed_hosts=["127.0.0.1"], log_level="ERROR", redis_url=None
    )
    runtime = Runtime.build(settings)
    await runtime.start()
    try:
        with receiver_process() as url:
            raw = [await baseline(url) for _ in range(3)]
            rounds = [await one_round(runtime, url, workers, args) for workers in (1, 2)]
    finally:
        await runtime.stop()
    raw_rate = median(raw)
    return {
        "baseline_posts_per_s": round(raw_rate, 1),
        "rounds": rounds,
        "share_of_baseline_2_workers": round(rounds[1]["deliveries_per_s"] / raw_rate, 3),
        "scaling_2_over_1": round(
            rounds[1]["deliveries_per_s"] / max(rounds[0]["deliveries_per_s"], 0.1), 2
        ),
        "target_deliveries_per_s_2_workers": 300,
        "target_latency_p95_ms": 1000,
        "load_average": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=50.0, help="events a second, latency run")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16, help="jobs per worker at once")
    args = parser.parse_args()
    exit_cleanly_on_sigterm()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        os.environ["DATABASE_URL"] = "postgresql://postgres@127.0.0.1:5432/postgres"
    with throwaway_database("custos-bench-webhooks") as url:
        upgrade(bench_settings(url))
        report = asyncio.run(run(url, args))
    print("Webhook deliveries (PostgreSQL, receiver on 127.0.0.1; shared machine)")
    print(f"  baseline: {report['baseline_posts_per_s']:.0f} plain POSTs/s from one process")
    print(
        f"  {'workers':>7}  {'deliveries/s':>12}  {'worker CPU ms':>13}  "
        f"{'p50 ms':>7}  {'p95 ms':>7}  {'max ms':>7}"
    )
    for r in report["rounds"]:
        print(
            f"  {r['workers']:>7}  {r['deliveries_per_s']:>12.1f}  "
            f"{r['worker_cpu_ms_per_delivery']:>13.2f}  {r['latency_p50_ms']:>7.1f}  "
            f"{r['latency_p95_ms']:>7.1f}  {r['latency_max_ms']:>7.1f}"
        )
    print(
        f"  2 workers / 1 worker: {report['scaling_2_over_1']}x; "
        f"2 workers / baseline: {report['share_of_baseline_2_workers']}; "
        f"load average {report['load_average']:.1f}"
    )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
