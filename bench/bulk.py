"""Benchmark: bulk import of customers (CSV and XLSX) and feedback ingest, on PostgreSQL.

- Import: a file of N customers (default 100,000, 2% deliberately bad rows), measured end
  to end as a job runs it: inspect and count the upload, store it, then the `bulk.run` job
  (validation and normalisation with the customer rules, COPY + INSERT ... ON CONFLICT,
  one `customer.created` event per row, the error report, the checkpoint per chunk, the
  summary audit row). Not over HTTP: the upload's transfer is not what is measured.
- Baseline, same run: a raw COPY of the same rows (the CSV file) into a table of text
  columns, the physical limit of loading them. The ratio import / COPY is printed.
- Feedback: M items (default 20,000) through the batch path in calls of 1,000: VADER
  sentiment, exact and near-duplicate detection against the window, events, one audit row
  per call. Twice, each in a tenant of its own: prose (template sentences, words drawn
  with Zipf weights from a 3,000-word vocabulary: the target's case) and word salad from
  50 words (every item meets dozens of near-duplicate candidates: the worst case). Both
  have 10% exact re-submissions and 5% near-copies.

Targets (reported, not asserted): import >= 10,000 rows/s; feedback >= 2,000 items/s (prose).
The machine may be shared: the ratio to COPY, measured in the same run, and the CPU time
of this process per row or item (the database server's is not in it) are the steadier
figures. Usage: python bench/bulk.py [--customers 100000 --feedback 20000]. DATABASE_URL
must name PostgreSQL (default postgresql://postgres@127.0.0.1:5432/postgres); a database
is created for the run and dropped after. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from openpyxl import Workbook
from sqlalchemy.engine import make_url

from _common import BenchError, bench_settings, exit_cleanly_on_sigterm
from custos.auth.principal import Principal, PrincipalKind
from custos.bulk import runner, service
from custos.bulk.formats import FileFormat
from custos.bulk.mapping import resolve
from custos.bulk.schemas import ImportMode, MatchOn, Resource
from custos.bulk.storage import storage_for
from custos.feedback import service as feedback_service
from custos.kit.scratch import throwaway_database
from custos.migrate import upgrade
from custos.models import BulkOperation
from custos.runtime import Runtime, settled_process
from custos.tenant import service as tenant_service
from custos.tenant.schemas import TenantCreate

HEADER = ["external_id", "email", "full_name", "phone", "company", "tags", "city", "country"]


def customer_rows(count: int) -> list[list[str]]:
    rnd = random.Random(1)
    rows = [HEADER]
    for i in range(count):
        row = [
            f"ext-{i}",
            f"person{i}@example.com",
            f"Person {i}",
            f"+1 415 555 {i % 10000:04d}",
            rnd.choice(["Acme", "Globex", "Initech", ""]),
            "vip|gold" if i % 3 == 0 else "",
            "Springfield",
            "US",
        ]
        if i % 50 == 49:  # 2% bad: an email, a missing name, a duplicate, in turn
            kind = (i // 50) % 3
            if kind == 0:
                row[1] = f"person{i}-at-example.com"
            elif kind == 1:
                row[2] = ""
            else:
                row[1] = "person0@example.com"
        rows.append(row)
    return rows


def write_csv(rows: list[list[str]], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)


def write_xlsx(rows: list[list[str]], path: Path) -> None:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("customers")
    for row in rows:
        sheet.append(row)
    book.save(path)


def raw_copy_seconds(database_url: str, path: Path) -> float:
    conninfo = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    columns = ", ".join(f"{c} text" for c in HEADER)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE copy_baseline ({columns})")
        started = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy("COPY copy_baseline FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
            path.open("rb") as f,
        ):
            while chunk := f.read(1 << 20):
                copy.write(chunk)
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE copy_baseline")
    return elapsed


async def make_tenant(runtime: Runtime) -> Principal:
    async with runtime.db.transaction(system=True) as session:
        tenant = await tenant_service.create(
            runtime,
            session,
            None,
            TenantCreate(name="Bench", slug=f"bench-{os.getpid()}-{random.randrange(10**6)}"),  # type: ignore[arg-type]
        )
    return Principal(
        kind=PrincipalKind.system,
        id="bench",
        tenant_id=tenant.id,
        scopes=frozenset(),
        tenant_settings={},
    )


async def queue_import(
    runtime: Runtime, actor: Principal, path: Path, fmt: FileFormat
) -> tuple[BulkOperation, int]:
    """What an upload does: inspect and count the file, store it, create a create-mode
    customer import with the automatic mapping, its job queued in the same transaction.
    Returns the operation and the file's row count."""
    inspection, total = service.inspect_upload(runtime.settings, path, fmt)
    async with runtime.db.transaction(tenant_id=actor.tenant_id) as session:
        op = await service.start_import(
            session,
            actor,
            storage_for(runtime.settings),
            path=path,
            file_name=path.name,
            inspection=inspection,
            total_rows=total,
            resource=Resource.customers,
            mode=ImportMode.create,
            match_on=MatchOn.auto,
            column_mapping=resolve(Resource.customers, inspection.headers, None),
            defaults={},
        )
    return op, total


async def import_file(
    runtime: Runtime, actor: Principal, path: Path, fmt: FileFormat
) -> dict[str, Any]:
    started, cpu = time.perf_counter(), time.process_time()
    op, total = await queue_import(runtime, actor, path, fmt)
    status = await runner.run(runtime, op.id)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    async with runtime.db.transaction(tenant_id=actor.tenant_id, write=False) as session:
        done = await service.get(session, actor, op.id)
    if status != "completed":
        raise BenchError(f"the import ended {status}: {done.error}")
    return {
        "rows": total,
        "seconds": round(elapsed, 3),
        "rows_per_s": round(total / elapsed),
        "cpu_us_per_row": round(1e6 * cpu / total, 1),
        "created": done.created,
        "failed": done.failed,
    }


# The worst case for near-duplicate detection: word salad from 50 words, where unrelated
# items share many shingles and every item meets dozens of candidates.
SALAD_WORDS = [
    "checkout",
    "page",
    "crash",
    "card",
    "pay",
    "love",
    "new",
    "dashboard",
    "great",
    "work",
    "delivery",
    "late",
    "support",
    "never",
    "answered",
    "please",
    "add",
    "export",
    "excel",
    "app",
    "fine",
    "search",
    "slow",
    "login",
    "broken",
    "refund",
    "order",
    "parcel",
    "damaged",
    "helpful",
    "staff",
    "price",
    "too",
    "high",
    "easy",
    "use",
    "mobile",
    "slow",
    "sync",
    "data",
    "lost",
    "settings",
    "menu",
    "confusing",
    "fast",
    "shipping",
    "quality",
    "poor",
    "excellent",
    "service",
    "again",
]

# Prose: sentences from templates, the words drawn from a 3,000-word vocabulary with Zipf
# weights (a few words common, most rare), as real feedback is; different items share the
# common words, not their substance.
TEMPLATES = [
    "The {0} {1} when I {2} the {3}, please {4} it.",
    "I {0} the new {1} but the {2} is {3} and {4}.",
    "Why does the {0} {1} every time I {2} my {3}? {4}!",
    "{0} {1} {2}: the {3} was {4} again.",
    "Great {0}, although the {1} {2} could be more {3} for {4}.",
]


def prose_texts(rnd: random.Random, count: int) -> list[str]:
    # Words of 3 to 10 letters, drawn by English letter frequencies.
    letters, freq = (
        "etaoinshrdlcumwfgypbvkjxqz",
        [13, 9, 8, 8, 7, 7, 6, 6, 6, 4, 4, 3, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1],
    )
    vocab = list(
        dict.fromkeys(
            "".join(rnd.choices(letters, freq, k=rnd.randint(3, 10))) for _ in range(3200)
        )
    )[:3000]

    weights = [1 / (rank + 1) for rank in range(len(vocab))]
    texts = []
    for _ in range(count):
        sentences = rnd.randint(1, 3)
        parts = [
            rnd.choice(TEMPLATES).format(*rnd.choices(vocab, weights, k=5))
            for _ in range(sentences)
        ]
        texts.append(" ".join(parts))
    return texts


def salad_texts(rnd: random.Random, count: int) -> list[str]:
    return [
        " ".join(rnd.choice(SALAD_WORDS) for _ in range(rnd.randint(8, 30))) for _ in range(count)
    ]


def feedback_items(corpus: str, count: int) -> list[tuple[int, dict[str, Any]]]:
    """10% exact re-submissions and 5% near-copies (an earlier text with one word more)."""
    rnd = random.Random(2)
    fresh = (prose_texts if corpus == "prose" else salad_texts)(rnd, count)
    items, texts = [], []
    for i in range(count):
        if i % 10 == 9 and texts:
            text = rnd.choice(texts)
        elif i % 20 == 4 and texts:
            text = rnd.choice(texts) + " thanks"
        else:
            text = fresh[i]
            texts.append(text)
        item = {"content": text, "rating": rnd.randint(1, 5), "feedback_type": "general_feedback"}
        items.append((i, item))
    return items


async def feedback_ingest(
    runtime: Runtime, actor: Principal, count: int, corpus: str
) -> dict[str, Any]:
    items = feedback_items(corpus, count)
    started, cpu = time.perf_counter(), time.process_time()
    created = duplicates = 0
    for start in range(0, count, 1000):
        async with runtime.db.transaction(tenant_id=actor.tenant_id) as session:
            result = await feedback_service.create_many(
                session,
                actor,
                runtime.settings,
                items[start : start + 1000],
                action="feedback.batch_created",
            )
        created += result.created
        duplicates += result.duplicates
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "corpus": corpus,
        "items": count,
        "seconds": round(elapsed, 3),
        "items_per_s": round(count / elapsed),
        "cpu_us_per_item": round(1e6 * cpu / count, 1),
        "created": created,
        "duplicates": duplicates,
    }


async def main_async(args: argparse.Namespace, database_url: str, workdir: Path) -> dict[str, Any]:
    settings = bench_settings(database_url, bulk_storage_dir=str(workdir / "files"), redis_url=None)
    runtime = Runtime.build(settings)
    await runtime.start()
    # Settled as a `custos worker` process, which runs these jobs, is.
    with settled_process(settings):
        try:
            rows = customer_rows(args.customers)
            csv_path, xlsx_path = workdir / "customers.csv", workdir / "customers.xlsx"
            write_csv(rows, csv_path)
            write_xlsx(rows, xlsx_path)
            copy_s = raw_copy_seconds(database_url, csv_path)
            copy_rate = args.customers / copy_s
            results: dict[str, Any] = {
                "copy": {"seconds": round(copy_s, 3), "rows_per_s": round(copy_rate)}
            }
            results["csv"] = await import_file(
                runtime, await make_tenant(runtime), csv_path, FileFormat.csv
            )
            results["xlsx"] = await import_file(
                runtime, await make_tenant(runtime), xlsx_path, FileFormat.xlsx
            )
            for name in ("csv", "xlsx"):
                results[name]["ratio_to_copy"] = round(results[name]["rows_per_s"] / copy_rate, 4)
            for corpus in ("prose", "salad"):
                results[f"feedback_{corpus}"] = await feedback_ingest(
                    runtime, await make_tenant(runtime), args.feedback, corpus
                )
            return results
        finally:
            await runtime.stop()


def main() -> None:
    exit_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--feedback", type=int, default=20_000)
    args = parser.parse_args()
    os.environ.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    if not os.environ["DATABASE_URL"].startswith("postgres"):
        raise SystemExit("bench/bulk.py measures PostgreSQL: set DATABASE_URL")
    with throwaway_database("custos-bench-bulk") as url, tempfile.TemporaryDirectory() as tmp:
        upgrade(bench_settings(url, redis_url=None))
        results = asyncio.run(main_async(args, url, Path(tmp)))
    print("(the machine may be shared with other work: compare the ratios, not the absolutes)")
    print(f"{'what':<28}{'rows':>10}{'seconds':>10}{'rows/s':>10}{'x COPY':>10}{'CPU us/row':>12}")
    copy = results["copy"]
    label = "raw COPY (baseline)"
    print(f"{label:<28}{args.customers:>10}{copy['seconds']:>10}{copy['rows_per_s']:>10}{1:>10}")
    for name in ("csv", "xlsx"):
        r = results[name]
        label = "import " + name.upper()
        print(
            f"{label:<28}{r['rows']:>10}{r['seconds']:>10}{r['rows_per_s']:>10}"
            f"{r['ratio_to_copy']:>10}{r['cpu_us_per_row']:>12}"
        )
        print(f"{'':<28}created {r['created']}, failed {r['failed']} (2% bad by construction)")
    for corpus, label in (("prose", "feedback, prose"), ("salad", "feedback, word salad")):
        f = results[f"feedback_{corpus}"]
        print(
            f"{label:<28}{f['items']:>10}{f['seconds']:>10}{f['items_per_s']:>10}{'':>10}"
            f"{f['cpu_us_per_item']:>12}"
        )
        print(f"{'':<28}created {f['created']}, duplicates {f['duplicates']}")
    print(
        "targets: import >= 10,000 rows/s; feedback >= 2,000 items/s (prose; the word salad"
        " is the near-duplicate detector's worst case, reported for reference)"
    )
    print(json.dumps(results))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
