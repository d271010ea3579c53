from __future__ import annotations

import asyncio
import io
import random
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa

from custos.bulk import runner
from custos.config import Settings
from custos.models import BulkOperation, Customer, Event
from custos.runtime import Runtime
from tests.bulk.helpers import (
    OPS,
    csv_bytes,
    error_report,
    run_to_end,
    start_import,
    xlsx_bytes,
)
from tests.conftest import runtime_with
from tests.factories import Factory, TenantHandle, bearer

HEADER = ["external_id", "email", "full_name", "phone", "company", "tags", "city", "country"]


@pytest.fixture
async def tenant(factory: Factory) -> TenantHandle:
    return await factory.tenant()


def customer_rows(
    count: int, bad_every: int = 50, seed: int = 7
) -> tuple[list[list[Any]], dict[int, str]]:
    """`count` data rows, one in `bad_every` deliberately bad; returns rows (header first)
    and {row number: the field at fault}."""
    rnd = random.Random(seed)
    rows: list[list[Any]] = [HEADER]
    bad: dict[int, str] = {}
    kinds = ["email", "phone", "duplicate", "full_name"]
    for i in range(count):
        number = i + 2
        row = [
            f"ext-{i}",
            f"person{i}@example.com",
            f"Person {i}",
            f"+1 415 555 {i % 10000:04d}",
            rnd.choice(["Acme", "Globex", ""]),
            "vip|gold" if i % 3 == 0 else "",
            "Springfield",
            "US",
        ]
        if i % bad_every == bad_every - 1:
            kind = kinds[(i // bad_every) % len(kinds)]
            if kind == "email":
                row[1] = f"person{i}-at-example.com"
            elif kind == "phone":
                row[3] = "call me maybe"
            elif kind == "duplicate":
                row[1] = "person0@example.com"
            else:
                row[2] = ""
            bad[number] = "email" if kind == "duplicate" else kind
        rows.append(row)
    return rows, bad


async def _strict(client: httpx.AsyncClient, factory: Factory, tenant: TenantHandle) -> None:
    operator = await factory.platform_admin()
    from tests.factories import login

    token = (await login(client, operator))["access_token"]
    response = await client.patch(
        f"/api/admin/tenants/{tenant.id}",
        json={"settings": {"phone_validation": "strict"}},
        headers=bearer(token),
    )
    assert response.status_code == 200, response.text


async def _count(runtime: Runtime, tenant_id: str) -> int:
    async with runtime.db.transaction(tenant_id=tenant_id, write=False) as session:
        return int(
            (
                await session.execute(
                    sa.select(sa.func.count()).where(Customer.tenant_id == tenant_id)
                )
            ).scalar_one()
        )


class TestImportWithBadRows:
    async def test_exact_counts_every_bad_row_reported_good_rows_all_present(
        self, client: httpx.AsyncClient, factory: Factory, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        await _strict(client, factory, tenant)
        rows, bad = customer_rows(2000)
        started = await start_import(client, tenant.admin_key, csv_bytes(rows))
        assert started.status_code == 202, started.text
        op = await run_to_end(runtime, client, tenant.admin_key, started.json()["id"])
        assert op["status"] == "completed"
        assert (op["total_rows"], op["rows_processed"]) == (2000, 2000)
        assert (op["created"], op["failed"], op["updated"]) == (2000 - len(bad), len(bad), 0)
        assert op["percent"] == 100.0
        report = await error_report(client, tenant.admin_key, op["id"])
        assert {int(r["row"]): r["field"] for r in report} == bad
        assert all(r["reason"] for r in report)
        assert "person0@example.com" not in str(report)  # reasons, not contents
        assert await _count(runtime, tenant.id) == 2000 - len(bad)
        async with runtime.db.transaction(tenant_id=tenant.id, write=False) as session:
            created_events = (
                await session.execute(
                    sa.select(sa.func.count()).where(
                        Event.tenant_id == tenant.id, Event.type == "customer.created"
                    )
                )
            ).scalar_one()
            sample = (
                await session.execute(
                    sa.select(Customer).where(
                        Customer.tenant_id == tenant.id, Customer.external_id == "ext-3"
                    )
                )
            ).scalar_one()
        assert created_events == 2000 - len(bad)
        assert sample.phone_e164 == "+14155550003"
        assert sample.tags == ["vip", "gold"]
        assert sample.address == {
            "line1": None,
            "line2": None,
            "city": "Springfield",
            "region": None,
            "postal_code": None,
            "country": "US",
        }
        audit = await client.get(
            "/api/v1/audit", params={"target_id": op["id"]}, headers=bearer(tenant.admin_key)
        )
        actions = sorted(a["action"] for a in audit.json()["items"])
        assert actions == ["bulk.import_completed", "bulk.import_started"]

    async def test_xlsx_gives_the_same_result_as_csv(
        self, client: httpx.AsyncClient, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        rows, bad = customer_rows(300, bad_every=30)
        started = await start_import(client, tenant.admin_key, xlsx_bytes(rows), name="c.xlsx")
        op = await run_to_end(runtime, client, tenant.admin_key, started.json()["id"])
        report = await error_report(client, tenant.admin_key, op["id"])
        # Lenient phones (the default) are kept unparsed, so only the other faults fail.
        expected = {n: f for n, f in bad.items() if f != "phone"}
        assert {int(r["row"]): r["field"] for r in report} == expected
        assert op["created"] == 300 - len(expected)

    async def test_values_arrive_exactly_and_ids_follow_the_file_order(
        self, client: httpx.AsyncClient, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        """Characters COPY's text format escapes (backslash, tab, newline, CR) in text and
        in JSON, across more rows than one staging slice."""
        tricky = {
            "full_name": "Back\\slash\tTab",
            "company": "Line\nbreak\r\nand \\N not null",
            "metadata": {"path": "C:\\dir\\n", "quote": 'say "hi"\t', "emoji": "😀"},
            "tags": ["a\\b", "c\td"],
        }
        address = {"line1": "1 Rue\\Étoile", "city": "Zürich\tZH", "country": "CH"}
        flat = {f"address.{k}": v for k, v in address.items()}
        items = [{**tricky, **flat, "email": "tricky@example.com"}] + [
            {"email": f"order{i}@example.com", "full_name": f"Order {i}"} for i in range(600)
        ]
        started = await start_import(
            client, tenant.admin_key, orjson.dumps(items), name="tricky.json"
        )
        assert started.status_code == 202, started.text
        op = await run_to_end(runtime, client, tenant.admin_key, started.json()["id"])
        assert (op["created"], op["failed"]) == (601, 0), op
        listed = await client.get(
            "/api/v1/customers", params={"limit": 1000}, headers=bearer(tenant.admin_key)
        )
        got = listed.json()["items"][::-1]  # newest (greatest id) first
        assert [c["email"] for c in got] == [i["email"] for i in items]
        assert {k: got[0][k] for k in tricky} == tricky
        assert {k: v for k, v in got[0]["address"].items() if v} == address
        # Over 200 events: on PostgreSQL they are written through COPY, in order.
        async with runtime.db.transaction(tenant_id=tenant.id, write=False) as session:
            written = (
                await session.execute(
                    sa.select(Event.payload)
                    .where(Event.tenant_id == tenant.id, Event.type == "customer.created")
                    .order_by(Event.seq)
                )
            ).scalars()
            payloads = [p["customer"] for p in written]
        assert [p["email"] for p in payloads] == [i["email"] for i in items]
        assert payloads[0] == got[0]


class TestModes:
    async def test_upsert_matches_on_external_id_then_email_and_update_refuses_unknowns(
        self, client: httpx.AsyncClient, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        first = [
            ["external_id", "email", "name"],
            ["a", "a@example.com", "Ann"],
            ["b", "b@example.com", "Ben"],
        ]
        op = await run_to_end(
            runtime,
            client,
            tenant.admin_key,
            (await start_import(client, tenant.admin_key, csv_bytes(first))).json()["id"],
        )
        assert op["created"] == 2
        upsert = [
            ["external_id", "email", "company", "name"],
            ["a", "", "Acme", ""],  # matched on external_id, company set
            ["", "b@example.com", "", "Ben"],  # matched on email, nothing to change
            ["c", "c@example.com", "New Co", "Cy"],  # no match: created
        ]
        op = await run_to_end(
            runtime,
            client,
            tenant.admin_key,
            (
                await start_import(
                    client,
                    tenant.admin_key,
                    csv_bytes(upsert),
                    mode="upsert",
                )
            ).json()["id"],
        )
        assert (op["created"], op["updated"], op["skipped"], op["failed"]) == (1, 1, 1, 0)
        update = [["email", "name"], ["zed@example.com", "Zed"], ["a@example.com", "Anne"]]
        op = await run_to_end(
            runtime,
            client,
            tenant.admin_key,
            (
                await start_import(
                    client, tenant.admin_key, csv_bytes(update), mode="update", match_on="email"
                )
            ).json()["id"],
        )
        assert (op["updated"], op["failed"]) == (1, 1)
        listed = await client.get(
            "/api/v1/customers", params={"q": "acme"}, headers=bearer(tenant.admin_key)
        )
        assert [(c["full_name"], c["version"]) for c in listed.json()["items"]] == [("Anne", 3)]

    async def test_dry_run_validates_everything_and_writes_nothing(
        self, raw_client: httpx.AsyncClient, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        rows, bad = customer_rows(200, bad_every=20)
        response = await start_import(
            raw_client, tenant.admin_key, csv_bytes(rows), params={"dry_run": "true"}
        )
        assert response.status_code == 200, response.text
        preview = response.json()
        assert preview["mapping"]["city"] == "address.city"
        assert preview["failed_rows"] == len([f for f in bad.values() if f != "phone"])
        assert preview["valid_rows"] == 200 - preview["failed_rows"]
        assert len(preview["sample"]) == 10
        assert await _count(runtime, tenant.id) == 0
        ops = await raw_client.get(OPS, headers=bearer(tenant.admin_key))
        assert ops.json()["items"] == []

    async def test_explicit_mapping_and_bad_options_are_422(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        content = csv_bytes([["Kunde", "Mail"], ["Kim", "kim@example.com"]])
        for form in (
            {"mapping": '{"Kunde": "nickname"}'},
            {"mapping": '{"Nope": "full_name"}'},
            {"mapping": "[1, 2]"},
            {"defaults": '{"colour": "blue"}'},
            {"mode": "update", "resource": "feedback"},
            {"match_on": "email"},
        ):
            response = await start_import(client, tenant.admin_key, content, **form)
            assert response.status_code == 422, (form, response.text)
        ok = await start_import(
            client, tenant.admin_key, content, mapping='{"Kunde": "full_name", "Mail": "email"}'
        )
        assert ok.status_code == 202
        assert ok.json()["options"]["mapping"] == {"Kunde": "full_name", "Mail": "email"}


def _zip_with(parts: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return out.getvalue()


class TestHostileFiles:
    async def test_a_zip_bomb_is_refused_quickly_without_expanding_it(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        bomb = _zip_with(
            {"xl/workbook.xml": b"<workbook/>", "xl/worksheets/sheet1.xml": b"\0" * 50_000_000}
        )
        assert len(bomb) < 200_000
        response = await start_import(client, tenant.admin_key, bomb, name="bomb.xlsx")
        assert response.status_code == 413, response.text
        assert "zip bomb" in response.json()["detail"]

    async def test_xml_entities_are_refused(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        billion = (
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><worksheet>&lol2;</worksheet>'
        )
        workbook = xlsx_bytes([["full_name"], ["Ann"]])
        with zipfile.ZipFile(io.BytesIO(workbook)) as source:
            parts = {n: source.read(n) for n in source.namelist()}
        parts["xl/worksheets/sheet1.xml"] = billion
        response = await start_import(client, tenant.admin_key, _zip_with(parts), name="e.xlsx")
        assert response.status_code == 422
        assert "entities" in response.json()["detail"]

    @pytest.mark.parametrize(
        ("content", "name"),
        [
            (b"", "empty.csv"),
            (b"\x89PNG\r\n\x1a\n", "image.xlsx"),
            (b"[1, 2", "broken.json"),
            (b'{"a": 1}', "object.json"),
            (b"full_name,full_name\nA,B\n", "twice.csv"),
            (b"x", "what.bin"),
        ],
    )
    async def test_malformed_files_get_a_problem_never_a_500(
        self, client: httpx.AsyncClient, tenant: TenantHandle, content: bytes, name: str
    ) -> None:
        response = await start_import(client, tenant.admin_key, content, name=name)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"

    async def test_a_nul_character_fails_its_row_and_the_rest_is_imported(
        self, client: httpx.AsyncClient, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        """PostgreSQL stores no NUL: the row holding one is reported, not the whole file
        lost (on SQLite too, so both backends keep the same data)."""
        rows = [["email", "full_name"], ["nul@example.com", "Ann\x00Lee"], ["ok@example.com", "Bo"]]
        nested = (
            b'[{"email": "deep@example.com", "full_name": "Cy",'
            b' "metadata": {"a": [{"b": "\\u0000"}]}},'
            b' {"email": "fine@example.com", "full_name": "Di"}]'
        )
        for content, name, bad_row, field in (
            (csv_bytes(rows), "nul.csv", "2", "full_name"),
            (nested, "nul.json", "1", "metadata"),
        ):
            started = await start_import(client, tenant.admin_key, content, name=name)
            assert started.status_code == 202, started.text
            op = await run_to_end(runtime, client, tenant.admin_key, started.json()["id"])
            assert (op["status"], op["created"], op["failed"]) == ("completed", 1, 1), op
            report = await error_report(client, tenant.admin_key, started.json()["id"])
            assert [(e["row"], e["field"]) for e in report] == [(bad_row, field)]
            assert "NUL" in report[0]["reason"]
        listed = await client.get("/api/v1/customers", headers=bearer(tenant.admin_key))
        assert {c["email"] for c in listed.json()["items"]} == {
            "ok@example.com",
            "fine@example.com",
        }
        # The form's JSON fields are refused like a JSON body, on both backends.
        refused = await start_import(
            client, tenant.admin_key, csv_bytes(rows), defaults='{"company": "A\\u0000"}'
        )
        assert refused.status_code == 422, refused.text
        assert "NUL" in refused.json()["detail"]

    async def test_encodings_delimiters_and_quoted_newlines(
        self, client: httpx.AsyncClient, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        rows = [["full_name", "company"], ["Zoë Ångström", "Crème; Brûlée\nLtd"], ["José", "Niño"]]
        cases = [
            csv_bytes(rows, encoding="utf-8-sig"),
            csv_bytes(rows, delimiter=";", encoding="utf-16"),
            csv_bytes(rows, delimiter="\t", encoding="utf-16-le"),
            csv_bytes(rows, delimiter="|", encoding="latin-1"),
        ]
        for content in cases:
            started = await start_import(client, tenant.admin_key, content, name="../../etc/x.csv")
            assert started.status_code == 202, started.text
            assert started.json()["file_name"] == "x.csv"
            op = await run_to_end(runtime, client, tenant.admin_key, started.json()["id"])
            assert (op["created"], op["failed"]) == (2, 0), op
        listed = await client.get(
            "/api/v1/customers", params={"q": "Ångström"}, headers=bearer(tenant.admin_key)
        )
        assert {c["company"] for c in listed.json()["items"]} == {"Crème; Brûlée\nLtd"}

    async def test_limits_on_size_and_rows(self, settings: Settings, tenant: TenantHandle) -> None:
        from custos.app import create_app

        async with (
            runtime_with(
                settings.database_url, bulk_max_upload_bytes=4096, bulk_max_rows=10
            ) as own,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=create_app(own.settings, own)),
                base_url="http://t",
            ) as client,
        ):
            big = csv_bytes([["full_name"]] + [["x" * 100]] * 100)
            response = await start_import(client, tenant.admin_key, big)
            assert response.status_code == 413
            many = csv_bytes([["full_name"]] + [["Ann"]] * 11)
            response = await start_import(client, tenant.admin_key, many)
            assert response.status_code == 413
            assert "rows" in response.json()["detail"]


class Killed(BaseException):
    """A process's death, simulated: nothing in Custos catches it. (Not SystemExit, which
    asyncio re-raises out of the event loop when a task raises it.)"""


async def _queued(
    client: httpx.AsyncClient, tenant: TenantHandle, count: int, bad_every: int, **form: str
) -> tuple[str, dict[int, str]]:
    """An import of `count` customers queued; its id and the rows it must refuse (phones
    are lenient here, so a bad phone is not one of them)."""
    rows, faults = customer_rows(count, bad_every=bad_every)
    started = await start_import(client, tenant.admin_key, csv_bytes(rows), **form)
    assert started.status_code == 202, started.text
    return started.json()["id"], {n: f for n, f in faults.items() if f != "phone"}


async def _operation(runtime: Runtime, op_id: str) -> BulkOperation:
    async with runtime.db.transaction(system=True) as session:
        op = await session.get(BulkOperation, op_id)
        assert op is not None
        return op


class TestResume:
    @pytest.fixture
    async def small_chunks(self, settings: Settings) -> AsyncIterator[Runtime]:
        async with runtime_with(
            settings.database_url, bulk_chunk_rows=100, bulk_lease_seconds=30
        ) as runtime:
            yield runtime

    async def test_a_crash_mid_import_resumes_from_the_checkpoint_without_duplicates(
        self,
        client: httpx.AsyncClient,
        tenant: TenantHandle,
        small_chunks: Runtime,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        op_id, bad = await _queued(client, tenant, 1000, bad_every=25)
        real = runner._commit_chunk
        calls = 0

        async def dies_in_the_fourth_chunk(*args: Any, **kwargs: Any) -> int:
            nonlocal calls
            calls += 1
            if calls == 4:
                raise Killed  # the process dies mid-chunk
            return await real(*args, **kwargs)

        monkeypatch.setattr(runner, "_commit_chunk", dies_in_the_fourth_chunk)
        with pytest.raises(Killed):
            await runner.run(small_chunks, op_id)
        monkeypatch.setattr(runner, "_commit_chunk", real)
        async with small_chunks.db.transaction(system=True) as session:
            op = await session.get(BulkOperation, op_id)
            assert op is not None
            assert (op.status, op.checkpoint) == ("running", 301)
            # Nobody renews the dead worker's lease; let it run out.
            op.lease_expires_at = op.lease_expires_at.replace(year=2000)  # type: ignore[union-attr]
        assert await runner.run(small_chunks, op_id) == "completed"
        final = await client.get(f"{OPS}/{op_id}", headers=bearer(tenant.admin_key))
        body = final.json()
        assert body["status"] == "completed"
        assert (body["created"], body["failed"], body["attempts"]) == (1000 - len(bad), len(bad), 2)
        assert await _count(small_chunks, tenant.id) == 1000 - len(bad)
        report = await error_report(client, tenant.admin_key, op_id)
        assert sorted(int(r["row"]) for r in report) == sorted(bad)

    async def test_a_failure_while_reading_lets_the_chunk_being_written_finish(
        self,
        client: httpx.AsyncClient,
        tenant: TenantHandle,
        small_chunks: Runtime,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Reading runs ahead of writing: when it fails, the chunk under way still commits
        whole (never cut off halfway), the chunks read but not begun are not written, and
        the import fails with its checkpoint after the last one committed."""
        op_id, _ = await _queued(client, tenant, 1000, bad_every=10_000)
        real_split, real_commit = runner.split_rows, runner._commit_chunk
        slices = 0
        log: list[str] = []

        def fails_in_the_sixth_chunk(*args: Any) -> Any:
            nonlocal slices
            slices += 1
            if slices == 26:  # chunks of 100 rows read 20 at a time: the sixth chunk
                log.append("reading failed")
                raise RuntimeError("a reader's bug")
            return real_split(*args)

        async def slow_commit(*args: Any, **kwargs: Any) -> int:
            await asyncio.sleep(0.1)  # the database's time: reading gets ahead
            last = await real_commit(*args, **kwargs)
            log.append(f"committed up to {last}")
            return last

        monkeypatch.setattr(runner, "split_rows", fails_in_the_sixth_chunk)
        monkeypatch.setattr(runner, "_commit_chunk", slow_commit)
        monkeypatch.setattr(runner, "_writers", lambda *_: 1)  # one at a time: this order
        assert await runner.run(small_chunks, op_id) == "failed"
        # Chunks 1-2 committed; the third was being written when reading failed, the
        # fourth and fifth waited their turn (read ahead), the sixth was being read.
        assert log == [
            "committed up to 101",
            "committed up to 201",
            "reading failed",
            "committed up to 301",
        ]
        op = await _operation(small_chunks, op_id)
        assert (op.status, op.error) == ("failed", "An internal error stopped it")
        assert (op.checkpoint, op.rows_processed, op.created) == (301, 300, 300)
        assert await _count(small_chunks, tenant.id) == 300

    @pytest.mark.parametrize("mode", ["create", "upsert"])
    async def test_new_customers_are_written_two_chunks_at_once_and_commit_in_file_order(
        self,
        client: httpx.AsyncClient,
        tenant: TenantHandle,
        small_chunks: Runtime,
        monkeypatch: pytest.MonkeyPatch,
        mode: str,
    ) -> None:
        """Two chunks at once only where they cannot wait on each other: new customers on
        PostgreSQL. An upsert (one customer could be matched from two chunks) and SQLite
        (one writer at a time) go one chunk at a time."""
        op_id, bad = await _queued(client, tenant, 1000, bad_every=40, mode=mode)
        real = runner._commit_chunk
        open_now = most_open = 0

        async def counted(*args: Any, **kwargs: Any) -> int:
            nonlocal open_now, most_open
            open_now += 1
            most_open = max(most_open, open_now)
            try:
                await asyncio.sleep(0.05)  # the database's time
                return await real(*args, **kwargs)
            finally:
                open_now -= 1

        monkeypatch.setattr(runner, "_commit_chunk", counted)
        assert await runner.run(small_chunks, op_id) == "completed"
        assert most_open == (2 if small_chunks.db.is_postgres and mode == "create" else 1)
        async with small_chunks.db.transaction(tenant_id=tenant.id) as session:
            emails = (
                await session.scalars(
                    sa.select(Event.payload["customer"]["email"].as_string())
                    .where(Event.tenant_id == tenant.id, Event.type == "customer.created")
                    .order_by(Event.seq)
                )
            ).all()
            by_id = (
                await session.scalars(
                    sa.select(Customer.email)
                    .where(Customer.tenant_id == tenant.id)
                    .order_by(Customer.id)
                )
            ).all()
        numbers = [int(e.removeprefix("person").removesuffix("@example.com")) for e in emails]
        assert len(numbers) == len(by_id) == 1000 - len(bad)
        assert numbers == sorted(numbers)  # the events in the file's order
        if mode == "create":  # an upsert's chunks each take ids of their own run
            assert by_id == emails  # the ids in the file's order too

    async def test_a_chunk_that_fails_takes_the_one_written_beside_it_down_too(
        self,
        client: httpx.AsyncClient,
        tenant: TenantHandle,
        small_chunks: Runtime,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The fourth chunk's rows are written while the third is under way; the third
        fails, so the fourth must not commit: the checkpoint never passes a missing chunk."""
        op_id, _ = await _queued(client, tenant, 1000, bad_every=10_000)
        real = runner._commit_chunk
        calls = 0
        fourth_wrote = asyncio.Event()

        async def third_fails_late(*args: Any, **kwargs: Any) -> int:
            nonlocal calls
            calls += 1
            if calls == 3:
                await asyncio.wait_for(fourth_wrote.wait(), 10)
                raise RuntimeError("the database refused the third chunk")
            if calls == 4:
                fourth_wrote.set()  # its transaction begins and writes; its commit waits
            return await real(*args, **kwargs)

        monkeypatch.setattr(runner, "_commit_chunk", third_fails_late)
        if not small_chunks.db.is_postgres:
            monkeypatch.setattr(runner, "_writers", lambda *_: 2)  # the same check here
        assert await runner.run(small_chunks, op_id) == "failed"
        assert calls == 4  # nothing begun after the failure
        op = await _operation(small_chunks, op_id)
        assert (op.checkpoint, op.rows_processed, op.created) == (201, 200, 200)
        assert await _count(small_chunks, tenant.id) == 200

    async def test_a_cancel_while_chunks_are_written_keeps_only_what_committed_before_it(
        self,
        client: httpx.AsyncClient,
        tenant: TenantHandle,
        small_chunks: Runtime,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Cancelled once two chunks have committed, while the third is about to be written
        (and, on PostgreSQL, the fourth beside it): neither commits, and the operation says
        exactly what is in the table."""
        op_id, _ = await _queued(client, tenant, 1000, bad_every=10_000)
        real = runner._commit_chunk
        calls = 0

        async def cancelled_before_the_third(*args: Any, **kwargs: Any) -> int:
            nonlocal calls
            calls += 1
            if calls == 3:
                for _ in range(200):  # the second chunk's commit does not wait for this one
                    if (await _operation(small_chunks, op_id)).checkpoint == 201:
                        break
                    await asyncio.sleep(0.05)
                cancelled = await client.post(
                    f"{OPS}/{op_id}/cancel", headers=bearer(tenant.admin_key)
                )
                assert cancelled.status_code == 200, cancelled.text
            return await real(*args, **kwargs)

        monkeypatch.setattr(runner, "_commit_chunk", cancelled_before_the_third)
        assert await runner.run(small_chunks, op_id) is None  # the lease is gone
        op = await _operation(small_chunks, op_id)
        assert (op.status, op.checkpoint, op.rows_processed, op.created) == (
            "cancelled",
            201,
            200,
            200,
        )
        assert await _count(small_chunks, tenant.id) == 200


class TestCancel:
    async def test_a_cancelled_import_stops_and_says_what_it_committed(
        self, client: httpx.AsyncClient, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        rows, _ = customer_rows(50)
        started = await start_import(client, tenant.admin_key, csv_bytes(rows))
        op_id = started.json()["id"]
        cancelled = await client.post(f"{OPS}/{op_id}/cancel", headers=bearer(tenant.admin_key))
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        assert await runner.run(runtime, op_id) is None  # a worker taking it finds it over
        assert await _count(runtime, tenant.id) == 0
        again = await client.post(f"{OPS}/{op_id}/cancel", headers=bearer(tenant.admin_key))
        assert again.status_code == 409
