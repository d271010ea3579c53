"""Benchmark: what authentication costs.

1. API key verification inside the handler: `Verifier(runtime).authenticate(key)` timed
   in-process, warm (credential cached, the steady state) and cold (cache miss, one
   database look-up). Target: warm p99 < 1 ms.
2. Requests/s of an authenticated no-op endpoint as a ratio to an unauthenticated one,
   both behind the full middleware stack, served by uvicorn (one worker) in a subprocess
   and driven by wrk over loopback, the endpoints interleaved round by round because the
   machine may be shared and noisy. Target: ratio >= 0.8.

Usage: python bench/auth.py [--rounds 3 --seconds 8 --connections 32 ...]
A fresh SQLite database by default; DATABASE_URL naming PostgreSQL (and REDIS_URL) runs it
against those servers, in a database created for the run and dropped after. The figures
are reported, not asserted: the exit status is 0 unless something broke.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import APIRouter

from _common import (
    HOST,
    BenchError,
    WrkResult,
    bench_settings,
    die_with_parent,
    exit_cleanly_on_sigterm,
    free_port,
    http_get,
    median,
    new_tenant_and_key,
    percentile,
    require_wrk,
    run_wrk,
    server_process,
    settings_env,
    wrk_script,
)
from custos.app import create_app
from custos.auth.dependencies import Authenticated
from custos.auth.scopes import ROLE_SCOPES, Role
from custos.auth.verifier import Verifier
from custos.config import Settings
from custos.kit.routing import CustosRoute
from custos.kit.scratch import throwaway_database
from custos.migrate import upgrade
from custos.observability import configure_logging
from custos.runtime import Runtime

VERIFY_P99_TARGET_US = 1000.0
RATIO_TARGET = 0.8
OPEN_PATH = "/bench/open"
AUTHED_PATH = "/bench/authed"
_ENDPOINTS = {"open": OPEN_PATH, "authed": AUTHED_PATH}


# -- the server side -------------------------------------------------------------------------


def serve(port: int) -> None:
    """Runs in the subprocess: the real app, plus two no-op routes that exist only here."""
    die_with_parent()
    app = create_app(Settings())
    # The route class every real endpoint uses, so only the dependency differs.
    router = APIRouter(route_class=CustosRoute)

    @router.get(OPEN_PATH)
    async def bench_open() -> dict[str, bool]:
        return {"ok": True}

    # Authenticated must be a module global: FastAPI resolves these (postponed) annotations
    # there, and an unresolved one silently becomes a query parameter.
    @router.get(AUTHED_PATH)
    async def bench_authed(principal: Authenticated) -> dict[str, bool]:
        return {"ok": bool(principal.id)}

    app.include_router(router)
    uvicorn.run(
        app,
        host=HOST,
        port=port,
        workers=1,
        log_level="warning",
        access_log=False,
        server_header=False,
    )


# -- verification in-process -----------------------------------------------------------------


@dataclass(frozen=True)
class Latencies:
    samples: int
    p50_us: float
    p99_us: float
    max_us: float

    @classmethod
    def of(cls, nanoseconds: list[int]) -> Latencies:
        ordered = sorted(ns / 1000 for ns in nanoseconds)
        return cls(
            samples=len(ordered),
            p50_us=percentile(ordered, 50),
            p99_us=percentile(ordered, 99),
            max_us=ordered[-1],
        )


@dataclass(frozen=True)
class VerifyResult:
    api_key: str
    warm: Latencies
    cold: Latencies
    cache_connected: bool


async def _wait_for_broadcast(runtime: Runtime, timeout: float = 5.0) -> bool:
    """With Redis, entries live the full TTL only once the invalidation channel is heard;
    measuring before that would time the degraded 1 s TTL instead of the steady state."""
    deadline = time.monotonic() + timeout
    while not runtime.credentials.connected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return runtime.credentials.connected


async def _time_warm(runtime: Runtime, key: str, warmup: int, iterations: int) -> list[int]:
    clock = time.perf_counter_ns
    for _ in range(warmup):
        await Verifier(runtime).authenticate(key)
    timings: list[int] = []
    for i in range(iterations):
        if i % 1000 == 0:
            # A cache hit never suspends, so give the loop a turn now and then: the Redis
            # heartbeat listener must run, as it would between requests in a server.
            await asyncio.sleep(0)
        started = clock()
        await Verifier(runtime).authenticate(key)
        timings.append(clock() - started)
    return timings


async def _time_cold(runtime: Runtime, key: str, warmup: int, iterations: int) -> list[int]:
    clock = time.perf_counter_ns
    timings: list[int] = []
    for i in range(warmup + iterations):
        runtime.credentials.invalidate_local(["*"])
        started = clock()
        await Verifier(runtime).authenticate(key)
        elapsed = clock() - started
        if i >= warmup:  # the first look-ups also open pool connections
            timings.append(elapsed)
    return timings


async def measure_verification(settings: Settings, iterations: int, cold: int) -> VerifyResult:
    runtime = Runtime.build(settings)
    await runtime.start()
    try:
        _, key = await new_tenant_and_key(runtime, sorted(ROLE_SCOPES[Role.admin]))
        connected = await _wait_for_broadcast(runtime)
        cold_ns = await _time_cold(runtime, key, warmup=20, iterations=cold)
        warm_ns = await _time_warm(runtime, key, warmup=2000, iterations=iterations)
        connected = connected and runtime.credentials.connected
    finally:
        await runtime.stop()
    return VerifyResult(key, Latencies.of(warm_ns), Latencies.of(cold_ns), connected)


# -- throughput over HTTP --------------------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    rounds: list[WrkResult]

    @property
    def rps(self) -> float:
        return median([r.rps for r in self.rounds])

    @property
    def p50_us(self) -> float:
        return median([r.p50_us for r in self.rounds])

    @property
    def p99_us(self) -> float:
        return median([r.p99_us for r in self.rounds])


def measure_throughput(
    settings: Settings, api_key: str, args: argparse.Namespace
) -> tuple[Throughput, Throughput]:
    wrk = require_wrk()
    port = free_port()
    argv = [sys.executable, str(Path(__file__).resolve()), "--serve", str(port)]
    # Both endpoints get the same request bytes: the difference is the auth dependency.
    headers = {"Authorization": f"Bearer {api_key}"}
    with (
        server_process(argv, settings_env(settings), port) as server,
        wrk_script() as script,
    ):
        _check_routes(server.base_url, headers)
        urls = {name: server.base_url + path for name, path in _ENDPOINTS.items()}

        def load(name: str, seconds: float) -> WrkResult:
            result = run_wrk(
                wrk,
                script,
                urls[name],
                seconds=seconds,
                connections=args.connections,
                threads=args.threads,
                headers=headers,
            )
            if result.status_errors or result.socket_errors or not result.requests:
                raise BenchError(
                    f"{name}: {result.status_errors} error responses and "
                    f"{result.socket_errors} socket errors in {result.requests} requests"
                )
            return result

        for name in _ENDPOINTS:
            load(name, args.warmup_seconds)
        results: dict[str, list[WrkResult]] = {name: [] for name in _ENDPOINTS}
        for round_no in range(args.rounds):
            # Alternate which goes first, so drift within a round does not favour either.
            order = list(_ENDPOINTS) if round_no % 2 == 0 else list(reversed(_ENDPOINTS))
            for name in order:
                result = load(name, args.seconds)
                results[name].append(result)
                print(
                    f"  round {round_no + 1}/{args.rounds} {name:<6} "
                    f"{result.rps:>9.0f} req/s  p99 {result.p99_us / 1000:.2f} ms",
                    flush=True,
                )
    return Throughput(results["open"]), Throughput(results["authed"])


def _check_routes(base_url: str, headers: dict[str, str]) -> None:
    """The figures mean something only if the routes answer as intended."""
    checks = [
        (OPEN_PATH, {}, 200),
        (AUTHED_PATH, headers, 200),
        (AUTHED_PATH, {}, 401),
    ]
    for path, sent, expected in checks:
        status = http_get(base_url + path, sent)
        if status != expected:
            raise BenchError(f"GET {path} answered {status}, expected {expected}")


# -- report ----------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(
    settings: Settings,
    verify: VerifyResult,
    open_: Throughput,
    authed: Throughput,
    args: argparse.Namespace,
) -> dict[str, Any]:
    backend = "postgresql" if settings.is_postgres else "sqlite"
    redis = "on" if settings.redis_url else "off"
    ratio = authed.rps / open_.rps if open_.rps else 0.0
    verify_ok = verify.warm.p99_us < VERIFY_P99_TARGET_US
    ratio_ok = ratio >= RATIO_TARGET

    print()
    print(
        f"Custos auth benchmark: backend {backend}, redis {redis}, "
        f"python {platform.python_version()}"
    )
    print()
    print("API key verification in-process, Verifier(runtime).authenticate(key)")
    print(f"  {'path':<22}{'samples':>9}{'p50 us':>10}{'p99 us':>10}{'max us':>10}")
    for label, lat in (("warm (cached)", verify.warm), ("cold (db look-up)", verify.cold)):
        print(
            f"  {label:<22}{lat.samples:>9}{lat.p50_us:>10.1f}{lat.p99_us:>10.1f}"
            f"{lat.max_us:>10.1f}"
        )
    if settings.redis_url and not verify.cache_connected:
        print("  note: the Redis invalidation channel was not heard; the cache ran degraded")
    print()
    print(
        f"No-op endpoint throughput: uvicorn 1 worker, wrk -t{args.threads} "
        f"-c{args.connections} -d{args.seconds}s, {args.rounds} interleaved rounds, median"
    )
    print(f"  {'endpoint':<16}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}   rounds req/s")
    for path, result in ((OPEN_PATH, open_), (AUTHED_PATH, authed)):
        rounds = " ".join(f"{r.rps:.0f}" for r in result.rounds)
        print(
            f"  {path:<16}{result.rps:>10.0f}{result.p50_us / 1000:>10.2f}"
            f"{result.p99_us / 1000:>10.2f}   {rounds}"
        )
    print(f"  ratio authed/open: {ratio:.3f}")
    print()
    print("Targets")
    print(
        f"  verification p99 (warm) < {VERIFY_P99_TARGET_US:.0f} us"
        f"{verify.warm.p99_us:>12.1f} us   {_verdict(verify_ok)}"
    )
    print(f"  throughput ratio >= {RATIO_TARGET:.2f}{ratio:>23.3f}      {_verdict(ratio_ok)}")
    print()
    return {
        "bench": "auth",
        "backend": backend,
        "redis": bool(settings.redis_url),
        "verify_warm_samples": verify.warm.samples,
        "verify_warm_p50_us": round(verify.warm.p50_us, 2),
        "verify_warm_p99_us": round(verify.warm.p99_us, 2),
        "verify_warm_max_us": round(verify.warm.max_us, 2),
        "verify_cold_samples": verify.cold.samples,
        "verify_cold_p50_us": round(verify.cold.p50_us, 2),
        "verify_cold_p99_us": round(verify.cold.p99_us, 2),
        "cache_connected": verify.cache_connected,
        "open_rps": round(open_.rps, 1),
        "authed_rps": round(authed.rps, 1),
        "ratio": round(ratio, 4),
        "open_p50_ms": round(open_.p50_us / 1000, 3),
        "open_p99_ms": round(open_.p99_us / 1000, 3),
        "authed_p50_ms": round(authed.p50_us / 1000, 3),
        "authed_p99_ms": round(authed.p99_us / 1000, 3),
        "open_rps_rounds": [round(r.rps, 1) for r in open_.rounds],
        "authed_rps_rounds": [round(r.rps, 1) for r in authed.rounds],
        # Per round too: their spread shows how noisy the machine was during the run.
        "ratio_rounds": [
            round(a.rps / o.rps, 4) if o.rps else 0.0
            for a, o in zip(authed.rounds, open_.rounds, strict=True)
        ],
        "wrk": {
            "threads": args.threads,
            "connections": args.connections,
            "seconds": args.seconds,
            "rounds": args.rounds,
        },
        "targets": {
            "verify_warm_p99_us": {"limit": VERIFY_P99_TARGET_US, "pass": verify_ok},
            "ratio": {"limit": RATIO_TARGET, "pass": ratio_ok},
        },
    }


# -- entry point -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--iterations", type=int, default=20_000, help="warm verifications")
    parser.add_argument("--cold", type=int, default=300, help="cold verifications")
    parser.add_argument("--rounds", type=int, default=3, help="wrk rounds per endpoint")
    parser.add_argument("--seconds", type=int, default=8, help="length of one wrk round")
    parser.add_argument("--warmup-seconds", type=int, default=2, help="wrk warm-up per endpoint")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    return parser.parse_args(argv)


def main() -> int:
    args = parse_args()
    if args.serve is not None:
        serve(args.serve)
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
            print("timing verification in-process ...", flush=True)
            verify = asyncio.run(measure_verification(settings, args.iterations, args.cold))
            print("driving the server with wrk ...", flush=True)
            open_, authed = measure_throughput(settings, verify.api_key, args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    result = report(settings, verify, open_, authed, args)
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
