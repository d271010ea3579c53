"""Benchmark: what traffic control costs, and what the read cache buys.

1. Requests/s of an authenticated no-op endpoint (an API key that has limits of its own)
   with rate limits and usage metering on, as a ratio to the same server with both off.
   Every limit that applies is checked (global, the key's, the tenant's); they are set far
   above the load, so nothing is refused. A no-op, so the figure is what traffic control
   costs, not diluted by a database read. Target: ratio >= 0.85.
2. Requests/s of GET /api/v1/customers/{id} with the read cache on, as a ratio to the same
   server with it off, the ids drawn from a Zipf-like distribution (rank k with weight
   1/k^s) over the seeded customers; and the cache's hit rate over the measured rounds.

Each configuration is one uvicorn worker in a subprocess, driven by wrk over loopback; the
two of a pair are measured in interleaved rounds, because the machine may be shared and
noisy. The figures are reported, not asserted: the exit status is 0 unless something broke.

Usage: python bench/traffic.py [--rounds 3 --seconds 8 --customers 5000 --zipf 1.1 ...]
A fresh SQLite database by default (in-process memory for limits and cache); DATABASE_URL
naming PostgreSQL and REDIS_URL run it on those, in a database created for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    BenchError,
    Server,
    WrkResult,
    bench_settings,
    exit_cleanly_on_sigterm,
    free_port,
    http_request,
    median,
    new_tenant_and_key,
    process_tree_cpu_seconds,
    require_wrk,
    run_wrk,
    server_process,
    settings_env,
    wait_until_idle,
    wrk_script,
)
from auth import AUTHED_PATH, serve
from custos.auth.scopes import ROLE_SCOPES, Role
from custos.auth.verifier import Verifier
from custos.config import Settings
from custos.customer import service as customer_service
from custos.customer.schemas import CustomerCreate
from custos.kit.scratch import throwaway_database
from custos.migrate import upgrade
from custos.observability import configure_logging
from custos.runtime import Runtime

RATIO_TARGET = 0.85
# bench/auth.py's no-op behind authentication: what traffic control costs, undiluted.
CUSTOMERS_PATH = "/api/v1/customers"
# Far above the load: the key's own limits are checked on every request, never reached.
KEY_LIMITS = {"per_minute": 1_000_000_000, "per_hour": 1_000_000_000}


# -- setup -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    api_key: str
    customer_ids: list[str]
    seconds: float


async def _seed(settings: Settings, customers: int) -> Seeded:
    """A tenant, an admin-scoped key with limits of its own, and customers made through the
    service as the API would (events, audit rows, search index included)."""
    started = time.monotonic()
    runtime = Runtime.build(settings)
    await runtime.start()
    try:
        tenant_id, secret = await new_tenant_and_key(
            runtime, sorted(ROLE_SCOPES[Role.admin]), rate_limits=KEY_LIMITS
        )
        actor = await Verifier(runtime).authenticate(secret)
        ids: list[str] = []
        for offset in range(0, customers, 500):
            async with runtime.db.transaction(tenant_id=tenant_id) as session:
                for n in range(offset, min(customers, offset + 500)):
                    body = CustomerCreate(
                        full_name=f"Customer {n}",
                        email=f"customer{n}@bench.example",
                        company=f"Company {n % 97}",
                        tags=["bench"],
                    )
                    ids.append((await customer_service.create(session, actor, body)).id)
    finally:
        await runtime.stop()
    return Seeded(secret, ids, time.monotonic() - started)


# -- servers ---------------------------------------------------------------------------------


def _start(stack: ExitStack, settings: Settings, **overrides: str) -> Server:
    port = free_port()
    env = settings_env(settings)
    env.update(overrides)
    argv = [sys.executable, str(Path(__file__).resolve()), "--serve", str(port)]
    server = stack.enter_context(server_process(argv, env, port))
    wait_until_idle(server.process.pid)
    return server


def _get(server: Server, path: str, key: str, expected: int = 200) -> Any:
    status, body = http_request(
        "GET", server.base_url + path, headers={"Authorization": f"Bearer {key}"}
    )
    if status != expected:
        raise BenchError(f"GET {path} answered {status}, expected {expected}: {body[:300]!r}")
    return json.loads(body)


def _cache_counts(server: Server, key: str) -> tuple[int, int]:
    stats = _get(server, "/api/v1/cache/stats", key)
    return int(stats["hits"]), int(stats["misses"])


# -- load ------------------------------------------------------------------------------------


def _zipf_lua(ids: list[str], exponent: float, seed: int) -> str:
    """A wrk script drawing customer ids by rank k with weight 1/k^exponent. The ranks are
    shuffled over the ids (popular records are not simply the newest), and the draw is
    seeded, so every configuration sees the same sequence of requests."""
    shuffled = ids[:]
    random.Random(seed).shuffle(shuffled)
    listing = ",".join(f'"{i}"' for i in shuffled)
    return f"""
local ids = {{{listing}}}
local n = #ids
local cdf = {{}}
local total = 0
for k = 1, n do total = total + 1 / (k ^ {exponent}); cdf[k] = total end
for k = 1, n do cdf[k] = cdf[k] / total end
math.randomseed({seed})
request = function()
  local u = math.random()
  local lo, hi = 1, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return wrk.format("GET", "{CUSTOMERS_PATH}/" .. ids[lo])
end
"""


@dataclass(frozen=True)
class Round:
    wrk: WrkResult
    # The server's CPU time per request: steadier than requests/s on a shared machine.
    cpu_us: float | None

    @property
    def rps(self) -> float:
        return self.wrk.rps


@dataclass(frozen=True)
class Pair:
    """One endpoint on two configurations, round by round."""

    on: list[Round]
    off: list[Round]

    @property
    def on_rps(self) -> float:
        return median([r.rps for r in self.on])

    @property
    def off_rps(self) -> float:
        return median([r.rps for r in self.off])

    @property
    def ratio(self) -> float:
        return self.on_rps / self.off_rps if self.off_rps else 0.0

    def ratios(self) -> list[float]:
        return [a.rps / b.rps if b.rps else 0.0 for a, b in zip(self.on, self.off, strict=True)]

    @staticmethod
    def cpu(rounds: list[Round]) -> float | None:
        values = [r.cpu_us for r in rounds if r.cpu_us is not None]
        return median(values) if values else None

    @property
    def cpu_ratio(self) -> float | None:
        """Requests per CPU second, on over off: the throughput ratio of a CPU-bound server."""
        on, off = self.cpu(self.on), self.cpu(self.off)
        return off / on if on and off else None


def _interleaved(
    wrk: str,
    script: str,
    servers: dict[str, Server],
    path: str,
    key: str,
    args: argparse.Namespace,
    label: str,
    after_warmup: Callable[[], None] | None = None,
) -> Pair:
    headers = {"Authorization": f"Bearer {key}"}

    def load(name: str, seconds: float) -> Round:
        server = servers[name]
        cpu_before = process_tree_cpu_seconds(server.process.pid)
        result = run_wrk(
            wrk,
            script,
            server.base_url + path,
            seconds=seconds,
            connections=args.connections,
            threads=args.threads,
            headers=headers,
        )
        cpu_after = process_tree_cpu_seconds(server.process.pid)
        if result.status_errors or result.socket_errors or not result.requests:
            raise BenchError(
                f"{label} {name}: {result.status_errors} error responses and "
                f"{result.socket_errors} socket errors in {result.requests} requests;"
                f" the server's log ends:\n{server.log_tail(15)}"
            )
        cpu_us = (
            (cpu_after - cpu_before) / result.requests * 1e6
            if cpu_before is not None and cpu_after is not None
            else None
        )
        return Round(result, cpu_us)

    for name in servers:
        load(name, args.warmup_seconds)
    if after_warmup is not None:
        after_warmup()
    results: dict[str, list[Round]] = {name: [] for name in servers}
    for round_no in range(args.rounds):
        order = list(servers) if round_no % 2 == 0 else list(reversed(servers))
        for name in order:
            measured = load(name, args.seconds)
            results[name].append(measured)
            cpu = f"  cpu {measured.cpu_us:.0f} us/req" if measured.cpu_us else ""
            print(
                f"  {label} round {round_no + 1}/{args.rounds} {name:<4}"
                f"{measured.rps:>9.0f} req/s  p99 {measured.wrk.p99_us / 1000:.2f} ms{cpu}",
                flush=True,
            )
    return Pair(results["on"], results["off"])


@dataclass(frozen=True)
class Measured:
    control: Pair
    cache: Pair
    hits: int
    misses: int

    @property
    def hit_rate(self) -> float:
        reads = self.hits + self.misses
        return self.hits / reads if reads else 0.0


def measure(settings: Settings, seeded: Seeded, args: argparse.Namespace) -> Measured:
    wrk = require_wrk()
    key = seeded.api_key
    with ExitStack() as stack:
        print("starting four servers ...", flush=True)
        control = {
            "on": _start(stack, settings),
            "off": _start(
                stack,
                settings,
                CUSTOS_RATE_LIMITS_ENABLED="false",
                CUSTOS_USAGE_METERING_ENABLED="false",
            ),
        }
        cache = {
            "on": _start(stack, settings, CUSTOS_CACHE_ENABLED="true"),
            "off": _start(stack, settings, CUSTOS_CACHE_ENABLED="false"),
        }
        # The figures mean something only if the endpoints answer as intended.
        for server in control.values():
            _get(server, AUTHED_PATH, key)
        limited = http_request("GET", control["on"].base_url + AUTHED_PATH, headers={})[0]
        if limited != 401:
            raise BenchError(f"GET {AUTHED_PATH} without a key answered {limited}, expected 401")
        sample = seeded.customer_ids[0]
        for server in cache.values():
            _get(server, f"{CUSTOMERS_PATH}/{sample}", key)

        print("authenticated endpoint, limits and metering on vs off ...", flush=True)
        with wrk_script() as plain:
            control_pair = _interleaved(wrk, plain, control, AUTHED_PATH, key, args, "authed")
        print(
            f"customer reads, cache on vs off, Zipf s={args.zipf} over"
            f" {len(seeded.customer_ids)} customers ...",
            flush=True,
        )
        lua = _zipf_lua(seeded.customer_ids, args.zipf, args.seed)
        with wrk_script(lua) as zipf:
            counted: list[tuple[int, int]] = []

            def count() -> None:
                counted.append(_cache_counts(cache["on"], key))

            # The hit rate over the measured rounds: counted after the warm-up and at the end.
            cache_pair = _interleaved(
                wrk, zipf, cache, CUSTOMERS_PATH, key, args, "customers", count
            )
            count()
    (hits_before, misses_before), (hits_after, misses_after) = counted
    return Measured(
        control=control_pair,
        cache=cache_pair,
        hits=hits_after - hits_before,
        misses=misses_after - misses_before,
    )


# -- report ----------------------------------------------------------------------------------


def _rounded(value: float | None, digits: int = 1) -> float | None:
    return round(value, digits) if value is not None else None


def _maybe(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "not measured"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _ratios(pair: Pair) -> None:
    print(f"  ratio on/off: {pair.ratio:.3f} requests/s, {_maybe(pair.cpu_ratio)} per CPU second")


def _rows(pair: Pair, labels: tuple[str, str]) -> None:
    print(
        f"  {'configuration':<26}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'cpu us/req':>12}"
        "   rounds req/s"
    )
    for label, results in zip(labels, (pair.on, pair.off), strict=True):
        rps = median([r.rps for r in results])
        p50 = median([r.wrk.p50_us for r in results]) / 1000
        p99 = median([r.wrk.p99_us for r in results]) / 1000
        cpu = Pair.cpu(results)
        cpu_text = f"{cpu:.0f}" if cpu is not None else "-"
        rounds = " ".join(f"{r.rps:.0f}" for r in results)
        print(f"  {label:<26}{rps:>9.0f}{p50:>9.2f}{p99:>9.2f}{cpu_text:>12}   {rounds}")


def report(
    settings: Settings, seeded: Seeded, measured: Measured, args: argparse.Namespace
) -> dict[str, Any]:
    backend = "postgresql" if settings.is_postgres else "sqlite"
    store = "redis" if settings.redis_url else "memory"
    control, cache = measured.control, measured.cache
    ratio_ok = control.ratio >= RATIO_TARGET
    print()
    print(
        f"Custos traffic benchmark: backend {backend}, limits and cache in {store},"
        f" python {platform.python_version()}"
    )
    print(
        f"uvicorn 1 worker per configuration, wrk -t{args.threads} -c{args.connections}"
        f" -d{args.seconds}s, {args.rounds} interleaved rounds, median"
    )
    print()
    print(f"GET {AUTHED_PATH}, a no-op behind authentication (global, key, tenant limits)")
    _rows(control, ("limits + metering on", "limits + metering off"))
    _ratios(control)
    print()
    print(
        f"GET {CUSTOMERS_PATH}/{{id}}, Zipf s={args.zipf} over {len(seeded.customer_ids)} customers"
    )
    _rows(cache, ("read cache on", "read cache off"))
    _ratios(cache)
    print(
        f"  hit rate over the measured rounds: {measured.hit_rate:.4f}"
        f" ({measured.hits} hits, {measured.misses} misses)"
    )
    print()
    print("Targets")
    print(
        f"  limits + metering on/off >= {RATIO_TARGET:.2f}{control.ratio:>14.3f}"
        f"      {_verdict(ratio_ok)}"
    )
    print()
    return {
        "bench": "traffic",
        "backend": backend,
        "store": store,
        "customers": len(seeded.customer_ids),
        "seed_s": round(seeded.seconds, 1),
        "control_on_rps": round(control.on_rps, 1),
        "control_off_rps": round(control.off_rps, 1),
        "control_ratio": round(control.ratio, 4),
        "control_ratio_rounds": [round(r, 4) for r in control.ratios()],
        "control_on_p99_ms": round(median([r.wrk.p99_us for r in control.on]) / 1000, 3),
        "control_off_p99_ms": round(median([r.wrk.p99_us for r in control.off]) / 1000, 3),
        "control_on_cpu_us": _rounded(Pair.cpu(control.on)),
        "control_off_cpu_us": _rounded(Pair.cpu(control.off)),
        "control_cpu_ratio": _rounded(control.cpu_ratio, 4),
        "cache_on_rps": round(cache.on_rps, 1),
        "cache_off_rps": round(cache.off_rps, 1),
        "cache_ratio": round(cache.ratio, 4),
        "cache_ratio_rounds": [round(r, 4) for r in cache.ratios()],
        "cache_on_p99_ms": round(median([r.wrk.p99_us for r in cache.on]) / 1000, 3),
        "cache_off_p99_ms": round(median([r.wrk.p99_us for r in cache.off]) / 1000, 3),
        "cache_on_cpu_us": _rounded(Pair.cpu(cache.on)),
        "cache_off_cpu_us": _rounded(Pair.cpu(cache.off)),
        "cache_cpu_ratio": _rounded(cache.cpu_ratio, 4),
        "cache_hits": measured.hits,
        "cache_misses": measured.misses,
        "cache_hit_rate": round(measured.hit_rate, 4),
        "zipf_exponent": args.zipf,
        "wrk": {
            "threads": args.threads,
            "connections": args.connections,
            "seconds": args.seconds,
            "rounds": args.rounds,
        },
        "targets": {"control_ratio": {"limit": RATIO_TARGET, "pass": ratio_ok}},
    }


# -- entry point -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--customers", type=int, default=5000, help="customers seeded")
    parser.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent s")
    parser.add_argument("--seed", type=int, default=7, help="seed of the id draw")
    parser.add_argument("--rounds", type=int, default=3, help="wrk rounds per configuration")
    parser.add_argument("--seconds", type=int, default=8, help="length of one wrk round")
    parser.add_argument("--warmup-seconds", type=int, default=2, help="wrk warm-up each")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    return parser.parse_args(argv)


def main() -> int:
    args = parse_args()
    if args.serve is not None:
        serve(args.serve)  # bench/auth.py's app: the real one plus no-op routes
        return 0
    require_wrk()  # fail before the setup work, not after it
    exit_cleanly_on_sigterm()
    started = time.monotonic()
    try:
        with throwaway_database("custos-bench") as database_url:
            settings = bench_settings(database_url)
            configure_logging(settings)
            print("setting up the database ...", flush=True)
            upgrade(settings)
            print(f"seeding {args.customers} customers ...", flush=True)
            seeded = asyncio.run(_seed(settings, args.customers))
            print(f"  done in {seeded.seconds:.1f} s", flush=True)
            measured = measure(settings, seeded, args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    result = report(settings, seeded, measured, args)
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
