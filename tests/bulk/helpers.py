"""Files and runs for the bulk tests."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
from openpyxl import Workbook

from custos.bulk import runner
from custos.runtime import Runtime
from tests.factories import bearer

IMPORT = "/api/v1/bulk/import"
OPS = "/api/v1/bulk/operations"


def csv_bytes(rows: list[list[Any]], delimiter: str = ",", encoding: str = "utf-8") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode(encoding)


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("data")
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def start_import(
    client: httpx.AsyncClient,
    key: str,
    content: bytes,
    *,
    name: str = "customers.csv",
    resource: str = "customers",
    params: dict[str, Any] | None = None,
    **form: str,
) -> httpx.Response:
    return await client.post(
        IMPORT,
        files={"file": (name, content)},
        data={"resource": resource, **form},
        params=params,
        headers=bearer(key),
    )


async def run_to_end(
    runtime: Runtime, client: httpx.AsyncClient, key: str, op_id: str
) -> dict[str, Any]:
    """Run the job here (the test app has no worker) and read the operation back."""
    await runner.run(runtime, op_id)
    response = await client.get(f"{OPS}/{op_id}", headers=bearer(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def error_report(client: httpx.AsyncClient, key: str, op_id: str) -> list[dict[str, str]]:
    response = await client.get(f"{OPS}/{op_id}/errors", headers=bearer(key))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))
