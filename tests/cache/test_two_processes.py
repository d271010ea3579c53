"""A write through one server process is never followed by the old value through another,
with readers on both keeping the shared cache busy meanwhile."""

from __future__ import annotations

import asyncio

import httpx

from tests.factories import Factory, bearer

BASE = "/api/v1/customers"


async def test_a_write_then_a_read_elsewhere_never_returns_the_old_value(
    servers: list[str], factory: Factory
) -> None:
    tenant = await factory.tenant(plan="enterprise")
    headers = bearer(tenant.admin_key)
    stop = asyncio.Event()
    async with httpx.AsyncClient(timeout=10) as http:
        made = await http.post(f"{servers[0]}{BASE}", json={"full_name": "v0"}, headers=headers)
        assert made.status_code == 201
        customer_id = made.json()["id"]

        async def hammer(url: str) -> None:
            # Readers racing the writer: they fill the cache between writes, on both sides.
            while not stop.is_set():
                await http.get(f"{url}{BASE}/{customer_id}", headers=headers)
                await http.get(f"{url}{BASE}", params={"q": "v"}, headers=headers)

        readers = [asyncio.create_task(hammer(url)) for url in servers for _ in range(2)]
        stale = []
        try:
            for i in range(1, 31):
                writer, reader = servers[i % 2], servers[(i + 1) % 2]
                changed = await http.patch(
                    f"{writer}{BASE}/{customer_id}", json={"full_name": f"v{i}"}, headers=headers
                )
                assert changed.status_code == 200
                record = await http.get(f"{reader}{BASE}/{customer_id}", headers=headers)
                listed = await http.get(f"{reader}{BASE}", params={"q": "v"}, headers=headers)
                if (
                    record.json()["full_name"] != f"v{i}"
                    or record.headers["etag"] != (changed.headers["etag"])
                ):
                    stale.append(("record", i, record.json()["full_name"]))
                if [c["full_name"] for c in listed.json()["items"]] != [f"v{i}"]:
                    stale.append(("list", i, listed.json()["items"]))
        finally:
            stop.set()
            await asyncio.gather(*readers)
        stats = await http.get(f"{servers[0]}/api/v1/cache/stats", headers=headers)
    assert stale == []
    # The readers were served from the cache too, so the race was real.
    assert stats.json()["hits"] > 0
