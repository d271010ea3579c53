from __future__ import annotations

import io
import json

import httpx
import pytest
from python_calamine import CalamineWorkbook

from custos.runtime import Runtime
from tests.bulk.helpers import OPS, csv_bytes, run_to_end, start_import
from tests.factories import Factory, TenantHandle, bearer

EXPORT = "/api/v1/bulk/export"
FIELDS = [
    "external_id",
    "email",
    "full_name",
    "phone",
    "company",
    "address.city",
    "address.country",
    "customer_type",
    "status",
    "tags",
    "metadata",
]


async def _export(
    client: httpx.AsyncClient, runtime: Runtime, key: str, fmt: str, **extra: object
) -> bytes:
    started = await client.post(
        EXPORT, json={"resource": "customers", "format": fmt, **extra}, headers=bearer(key)
    )
    assert started.status_code == 202, started.text
    op = await run_to_end(runtime, client, key, started.json()["id"])
    assert op["status"] == "completed", op
    download = await client.get(op["download_url"], headers=bearer(key))
    assert download.status_code == 200
    return download.content


@pytest.mark.parametrize("fmt", ["csv", "json", "xlsx"])
async def test_round_trip_export_import_into_a_new_tenant_export_is_identical(
    client: httpx.AsyncClient, factory: Factory, runtime: Runtime, fmt: str
) -> None:
    source, target = await factory.tenant(), await factory.tenant()
    rows = [
        ["external_id", "email", "name", "phone", "company", "city", "country", "tags", "metadata"],
        [
            "e1",
            "ann@example.com",
            "Ann",
            "+1 415 555 2671",
            "=SUM(A1)",
            "Paris",
            "FR",
            "vip|gold",
            '{"tier": 2}',
        ],
        ["e2", "", "Bob, Jr.", "", "Multi\nline", "", "", "", ""],
        ["e3", "cy@example.com", "@cy", "-5", "+x", "Köln", "DE", "a;b", '{"n": {"deep": true}}'],
    ]
    started = await start_import(client, source.admin_key, csv_bytes(rows))
    await run_to_end(runtime, client, source.admin_key, started.json()["id"])
    first = await _export(client, runtime, source.admin_key, fmt, fields=FIELDS)
    started = await start_import(client, target.admin_key, first, name=f"export.{fmt}")
    assert started.status_code == 202, started.text
    op = await run_to_end(runtime, client, target.admin_key, started.json()["id"])
    assert (op["created"], op["failed"]) == (3, 0), op
    second = await _export(client, runtime, target.admin_key, fmt, fields=FIELDS)
    if fmt == "xlsx":  # zip timestamps differ; the cells must not

        def cells(data: bytes) -> list[list[object]]:
            return (
                CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_index(0).to_python()
            )

        assert cells(first) == cells(second)
    else:
        assert first == second
    if fmt == "csv":
        text = first.decode()
        assert "'=SUM(A1)" in text
        assert "'+x" in text
        assert "'@cy" in text
    if fmt == "json":
        assert json.loads(first)[0]["company"] == "=SUM(A1)"  # JSON is not a spreadsheet


async def test_filters_and_fields_select_what_is_written(
    client: httpx.AsyncClient, factory: Factory, runtime: Runtime
) -> None:
    tenant: TenantHandle = await factory.tenant()
    rows = [["name", "status"], ["Active Al", "active"], ["Idle Ida", "inactive"]]
    await run_to_end(
        runtime,
        client,
        tenant.admin_key,
        (await start_import(client, tenant.admin_key, csv_bytes(rows))).json()["id"],
    )
    data = await _export(
        client,
        runtime,
        tenant.admin_key,
        "csv",
        fields=["full_name"],
        filters={"status": "inactive"},
    )
    assert data.decode() == "full_name\r\nIdle Ida\r\n"
    for body in (
        {"resource": "customers", "fields": ["password_hash"]},
        {"resource": "customers", "filters": {"colour": "red"}},
        {"resource": "customers", "filters": {"created_after": "yesterday"}},
        {"resource": "orders"},
    ):
        response = await client.post(EXPORT, json=body, headers=bearer(tenant.admin_key))
        assert response.status_code == 422, body


async def test_download_before_completion_is_409_and_imports_have_no_file(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    tenant = await factory.tenant()
    started = await client.post(
        EXPORT, json={"resource": "feedback"}, headers=bearer(tenant.admin_key)
    )
    op_id = started.json()["id"]
    early = await client.get(f"{OPS}/{op_id}/download", headers=bearer(tenant.admin_key))
    assert early.status_code == 409
    imported = await start_import(client, tenant.admin_key, csv_bytes([["name"], ["A"]]))
    none = await client.get(
        f"{OPS}/{imported.json()['id']}/download", headers=bearer(tenant.admin_key)
    )
    assert none.status_code == 404
    listed = await client.get(OPS, params={"kind": "export"}, headers=bearer(tenant.admin_key))
    assert [o["id"] for o in listed.json()["items"]] == [op_id]
