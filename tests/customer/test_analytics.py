from __future__ import annotations

from datetime import UTC, datetime

import httpx

from custos.auth.scopes import ROLE_SCOPES, Role
from tests.factories import Factory, bearer

BASE = "/api/v1/customers"


class TestAnalytics:
    async def test_figures_match_a_known_set(
        self, client: httpx.AsyncClient, factory: Factory
    ) -> None:
        tenant = await factory.tenant()
        service_key = await factory.key(tenant.id, sorted(ROLE_SCOPES[Role.service]))
        headers = bearer(tenant.admin_key)
        rows = [
            {"full_name": "Ann", "phone": "+14155552671", "company": "Acme"},
            {"full_name": "Bob", "phone": "+14155552671", "customer_type": "business"},
            {"full_name": "Cy", "phone": "+1234567890", "company": "Acme", "status": "inactive"},
            {"full_name": "Ann", "company": "Acme"},
            {"full_name": "Deleted", "company": "Gone"},
        ]
        ids = [(await client.post(BASE, json=r, headers=headers)).json()["id"] for r in rows]
        await client.delete(f"{BASE}/{ids[4]}", headers=headers)
        for customer_id, value, when in (
            (ids[0], "120.00", "2026-11-01T00:00:00Z"),
            (ids[1], "300.00", "2020-01-01T00:00:00Z"),
        ):
            await client.patch(
                f"/api/v1/internal/customers/{customer_id}/statistics",
                json={
                    "increment_id": f"o-{customer_id}",
                    "orders": 1,
                    "order_value": value,
                    "currency": "USD",
                    "last_order_at": when,
                },
                headers=bearer(service_key),
            )
        report = (await client.get(f"{BASE}/analytics", headers=headers)).json()
        assert report["total"] == 4
        assert report["by_status"] == {"active": 3, "inactive": 1}
        assert report["by_type"] == {"business": 1, "individual": 3}
        assert sum(report["new_per_week"].values()) == 4
        assert sum(report["new_per_month"].values()) == 4
        this_month = datetime.now(UTC).strftime("%Y-%m")
        assert report["new_per_month"] == {this_month: 4}
        assert [t["full_name"] for t in report["top_by_order_value"]] == ["Bob", "Ann"]
        assert report["top_by_order_value"][0]["total_order_value"] == "300.00"
        # Ann ordered within 90 days; Bob in 2020; Cy and the other Ann never.
        assert report["no_order_in_days"] == {"days": 90, "count": 3}
        assert report["data_quality"] == {
            "missing_phone": 1,
            "unparseable_phone": 1,  # Cy's +1234567890, kept as given
            "missing_company": 1,
            # Ann and Bob share a phone; the two Anns at Acme share name and company.
            "possible_duplicates": 3,
        }
        narrow = await client.get(
            f"{BASE}/analytics", params={"inactive_days": 3650}, headers=headers
        )
        assert narrow.json()["no_order_in_days"]["count"] == 2
        assert (
            await client.get(f"{BASE}/analytics", params={"weeks": 0}, headers=headers)
        ).status_code == 422
        # Another tenant's figures know nothing of these records.
        other = await factory.tenant()
        theirs = (await client.get(f"{BASE}/analytics", headers=bearer(other.admin_key))).json()
        assert theirs["total"] == 0
        assert theirs["top_by_order_value"] == []
        assert theirs["data_quality"]["possible_duplicates"] == 0
