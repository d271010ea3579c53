from __future__ import annotations

import asyncio
import json
import random
from typing import Any, cast

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from custos.auth.principal import Principal, PrincipalKind
from custos.config import Settings
from custos.feedback import dedup
from custos.feedback import service as feedback_service
from custos.feedback.repository import FeedbackRepository
from custos.migrate import alembic_config, upgrade
from custos.models import Event, Feedback, FeedbackBand, Tenant
from custos.runtime import Runtime
from tests.bulk.helpers import csv_bytes, xlsx_bytes
from tests.conftest import api_client, own_database, runtime_with
from tests.factories import Factory, TenantHandle, bearer

BASE = "/api/v1/feedback"


@pytest.fixture
async def tenant(factory: Factory) -> TenantHandle:
    return await factory.tenant()


async def _customer(client: httpx.AsyncClient, tenant: TenantHandle, name: str = "Fay") -> str:
    response = await client.post(
        "/api/v1/customers", json={"full_name": name}, headers=bearer(tenant.admin_key)
    )
    return str(response.json()["id"])


class TestSubmit:
    async def test_one_item_is_scored_stored_and_announced(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        customer = await _customer(client, tenant)
        response = await client.post(
            BASE,
            json={
                "customer_id": customer,
                "feedback_type": "praise",
                "subject": "Great support",
                "content": "The support team was wonderful and fixed it fast!",
                "rating": 5,
                "tags": ["support"],
            },
            headers=bearer(tenant.admin_key),
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["sentiment_label"] == "positive"
        assert body["sentiment_score"] > 0.5
        assert body["status"] == "new"
        assert body["source"] == "api"
        assert response.headers["ETag"] == f'"{body["id"]}.1"'
        got = await client.get(f"{BASE}/{body['id']}", headers=bearer(tenant.admin_key))
        assert got.json() == body

    async def test_an_unknown_customer_is_404_and_nothing_is_written(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        response = await client.post(
            BASE,
            json={"customer_id": "cus_01M8QVGEENA8V5MZYE7B80CS5D", "content": "hello"},
            headers=bearer(tenant.admin_key),
        )
        assert response.status_code == 404
        listed = await client.get(BASE, headers=bearer(tenant.admin_key))
        assert listed.json()["items"] == []

    async def test_another_tenants_customer_is_404_too(
        self, client: httpx.AsyncClient, tenant: TenantHandle, factory: Factory
    ) -> None:
        other = await factory.tenant()
        theirs = await _customer(client, other, "Not Yours")
        response = await client.post(
            BASE,
            json={"customer_id": theirs, "content": "Not Yours says hello"},
            headers=bearer(tenant.admin_key),
        )
        assert response.status_code == 404
        batch = await client.post(
            f"{BASE}/batch",
            json={"items": [{"customer_id": theirs, "content": "hello"}, {"content": "hi"}]},
            headers=bearer(tenant.admin_key),
        )
        assert batch.status_code == 200, batch.text
        assert (batch.json()["created"], batch.json()["failed"]) == (1, 1)
        assert batch.json()["errors"] == [
            {"index": 0, "errors": [{"loc": ["customer_id"], "msg": "no such customer"}]}
        ]
        listed = await client.get(BASE, headers=bearer(other.admin_key))
        assert listed.json()["items"] == []

    @pytest.mark.parametrize(
        "body",
        [
            {"content": ""},
            {"content": "x", "rating": 6},
            {"content": "x", "feedback_type": "rant"},
            {"content": "x" * 10_001},
            {"content": "x", "surprise": 1},
        ],
    )
    async def test_invalid_input_is_422(
        self, client: httpx.AsyncClient, tenant: TenantHandle, body: dict[str, object]
    ) -> None:
        response = await client.post(BASE, json=body, headers=bearer(tenant.admin_key))
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"

    async def test_a_complaint_counts_on_the_customer_once_per_wording(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        customer = await _customer(client, tenant)
        complaint = {"customer_id": customer, "feedback_type": "complaint"}
        for content in ("The parcel arrived broken.", "The parcel arrived broken.", "Late again"):
            response = await client.post(
                BASE, json={**complaint, "content": content}, headers=bearer(tenant.admin_key)
            )
            assert response.status_code == 201
        stats = await client.get(
            f"/api/v1/customers/{customer}/statistics", headers=bearer(tenant.admin_key)
        )
        # The exact re-submission is linked to the first and does not count again.
        assert stats.json()["complaint_count"] == 2

    async def test_idempotency_key_replays_the_first_response(
        self, raw_client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        headers = {**bearer(tenant.admin_key), "Idempotency-Key": "fb-1"}
        first = await raw_client.post(BASE, json={"content": "Once"}, headers=headers)
        again = await raw_client.post(BASE, json={"content": "Once"}, headers=headers)
        assert first.status_code == again.status_code == 201
        assert first.json()["id"] == again.json()["id"]
        listed = await raw_client.get(BASE, headers=bearer(tenant.admin_key))
        assert len(listed.json()["items"]) == 1


class TestDuplicates:
    async def test_resubmissions_and_near_copies_link_to_the_original(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        customer = await _customer(client, tenant)
        text = "The mobile app crashes every time I open the settings page on my phone."
        items = [
            text,
            text.upper(),  # normalised away: exact
            "The mobile app crashes every time I open the settings page on my phone!!",
            "the mobile app crashes each time I open the settings page on my phone",
            "Please add a dark mode to the dashboard.",
        ]
        ids = []
        for content in items:
            response = await client.post(
                BASE,
                json={"customer_id": customer, "content": content},
                headers=bearer(tenant.admin_key),
            )
            ids.append(response.json())
        assert ids[0]["duplicate_of_id"] is None
        assert (ids[1]["duplicate_kind"], ids[1]["duplicate_of_id"]) == ("exact", ids[0]["id"])
        assert ids[2]["duplicate_kind"] == "exact"  # punctuation ignored
        assert (ids[3]["duplicate_kind"], ids[3]["duplicate_of_id"]) == ("near", ids[0]["id"])
        assert ids[4]["duplicate_of_id"] is None
        other = await _customer(client, tenant, "Other")
        theirs = await client.post(
            BASE, json={"customer_id": other, "content": text}, headers=bearer(tenant.admin_key)
        )
        assert theirs.json()["duplicate_of_id"] is None  # another person saying the same

    async def test_a_large_call_finds_the_same_as_a_small_one_would(
        self,
        client: httpx.AsyncClient,
        tenant: TenantHandle,
        factory: Factory,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """From 256 items a call is analysed in halves, the first half's band keys looked
        up while the second is analysed. The same calls, made in one piece in another
        tenant, must link every item to the same original."""
        rnd = random.Random(7)
        words = ["".join(rnd.choices("abcdefghijklmnopqrstuvwxyz", k=7)) for _ in range(400)]

        def text() -> str:
            return " ".join(rnd.choices(words, k=14))

        earlier = [text() for _ in range(10)]
        batch = [text() for _ in range(300)]
        batch[10] = earlier[0] + " again"  # near an earlier item, from the first half
        batch[200] = earlier[1] + " again"  # near an earlier item, from the second half
        batch[260] = earlier[0] + " once more"  # its keys were all looked up for batch[10]
        batch[250] = batch[5].upper()  # exact, across the halves
        batch[280] = batch[20] + " too"  # near, across the halves

        async def links(handle: TenantHandle) -> list[tuple[str | None, int | None]]:
            headers = bearer(handle.admin_key)
            ids: list[str] = []
            for texts in (earlier, batch):
                made = await client.post(
                    f"{BASE}/batch",
                    json={"items": [{"content": t} for t in texts]},
                    headers=headers,
                )
                assert made.status_code == 200, made.text
                ids += made.json()["ids"]
            listed = await client.get(BASE, params={"limit": 1000}, headers=headers)
            by_id = {item["id"]: item for item in listed.json()["items"]}
            position = {feedback_id: n for n, feedback_id in enumerate(ids)}
            return [
                (
                    by_id[i]["duplicate_kind"],
                    position.get(by_id[i]["duplicate_of_id"])
                    if by_id[i]["duplicate_of_id"]
                    else None,
                )
                for i in ids
            ]

        in_halves = await links(tenant)
        monkeypatch.setattr(feedback_service, "_OVERLAP_FROM", 10**6)
        in_one_piece = await links(await factory.tenant())
        assert in_halves == in_one_piece
        found = {n - 10: link for n, link in enumerate(in_halves) if link != (None, None)}
        assert found == {
            10: ("near", 0),
            200: ("near", 1),
            250: ("exact", 15),
            260: ("near", 0),
            280: ("near", 30),
        }

    async def test_a_failure_in_the_second_half_waits_for_the_first_halfs_look_up(
        self,
        client: httpx.AsyncClient,
        tenant: TenantHandle,
        runtime: Runtime,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The first half's band look-up is under way on the call's session when the second
        half's analysis fails: the statement must end by itself before the error leaves
        (kit/overlap.py: let_finish), and nothing of the call is written."""
        happened: list[str] = []
        calls = 0
        split_map, band_hits = feedback_service.split_map, FeedbackRepository.band_hits

        async def failing_second(fn: Any, items: Any, workers: int) -> Any:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise RuntimeError("analysis failed")
            return await split_map(fn, items, workers)

        async def slow_band_hits(repo: FeedbackRepository, bands: Any) -> Any:
            await asyncio.sleep(0.2)
            found = await band_hits(repo, bands)
            happened.append("look-up ended")
            return found

        monkeypatch.setattr(feedback_service, "split_map", failing_second)
        monkeypatch.setattr(FeedbackRepository, "band_hits", slow_band_hits)
        items = [(n, {"content": f"item number {n} of a large call"}) for n in range(300)]
        with pytest.raises(RuntimeError, match="analysis failed"):
            await _ingest_in_transaction(runtime, tenant.id, items, happened)
        assert happened == ["look-up ended", "failed"]

        monkeypatch.undo()
        listed = await client.get(BASE, headers=bearer(tenant.admin_key))
        assert listed.json()["items"] == []
        again = await client.post(
            f"{BASE}/batch",
            json={"items": [item for _, item in items]},
            headers=bearer(tenant.admin_key),
        )
        assert again.status_code == 200, again.text
        assert again.json()["created"] == 300

    def test_precision_and_recall_on_a_built_set(self) -> None:
        """Pairs built from 40 distinct complaints: re-submissions (case, punctuation),
        near-copies (a word changed, added or dropped) and unrelated pairs."""
        base = [
            f"Order {n} arrived {adj} and the {item} inside was {state}; I want a refund now."
            for n, (adj, item, state) in enumerate(
                [
                    (a, i, s)
                    for a in ("late", "early", "damaged", "open")
                    for i, s in (
                        ("blender", "cracked"),
                        ("lamp", "missing"),
                        ("kettle", "leaking"),
                        ("chair", "scratched"),
                        ("phone case", "the wrong colour"),
                        ("printer", "dead"),
                        ("speaker", "silent"),
                        ("toaster", "rusty"),
                        ("watch", "stopped"),
                        ("jacket", "torn"),
                    )
                ]
            )
        ]
        positives = []
        for text in base:
            positives.append((text, text.upper().replace(";", ",")))
            positives.append((text, text.replace("I want", "I would like")))
            positives.append((text, text + " Thanks."))
        negatives = [(base[i], base[(i * 7 + 3) % len(base)]) for i in range(len(base))]
        negatives += [(base[i], "Love the new app, the dashboard is great!") for i in range(10)]
        threshold = Settings().feedback_near_duplicate_threshold

        def same_hash(a: str, b: str) -> bool:
            na, nb = dedup.normalise(a), dedup.normalise(b)
            return dedup.content_hash(na) == dedup.content_hash(nb)

        def same(a: str, b: str) -> bool:
            na, nb = dedup.normalise(a), dedup.normalise(b)
            if dedup.content_hash(na) == dedup.content_hash(nb):
                return True
            return dedup.similarity(dedup.sketch(na), dedup.sketch(nb)) >= threshold

        tp = sum(same(a, b) for a, b in positives)
        fp = sum(same(a, b) for a, b in negatives if a != b)
        precision = tp / (tp + fp)
        recall = tp / len(positives)
        print(f"duplicate detection: precision {precision:.3f}, recall {recall:.3f}")
        assert precision >= 0.95
        assert recall >= 0.9

        def keys(text: str, customer: str | None) -> set[int]:
            _, bins = dedup.fingerprint(dedup.normalise(text))
            return set(dedup.band_keys(bins, customer))

        # The band index finds every near-copy as a candidate, for the same customer only.
        near = [(a, b) for a, b in positives if not same_hash(a, b)]
        assert near
        assert all(keys(a, "cus_1") & keys(b, "cus_1") for a, b in near)
        assert not any(keys(a, "cus_1") & keys(b, "cus_2") for a, b in near)
        assert not any(keys(a, "cus_1") & keys(a, None) for a, _ in near)


class TestBandIndex:
    async def test_band_rows_go_with_their_item_whatever_deletes_it(
        self, client: httpx.AsyncClient, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        """On PostgreSQL a statement trigger deletes them (no foreign keys there), on
        SQLite the foreign keys' cascade: from a customer's hard delete, from the tenant's."""
        customer = await _customer(client, tenant)
        texts = ["The parcel was late again", "Checkout page froze twice", "Lovely staff"]
        for text in texts:
            response = await client.post(
                BASE,
                json={"customer_id": customer, "content": text},
                headers=bearer(tenant.admin_key),
            )
            assert response.status_code == 201
        anonymous = await client.post(
            BASE, json={"content": "Nobody in particular"}, headers=bearer(tenant.admin_key)
        )

        async def band_rows() -> dict[str, int]:
            async with runtime.db.transaction(system=True, write=False) as session:
                rows = await session.execute(
                    sa.select(FeedbackBand.feedback_id, sa.func.count())
                    .where(FeedbackBand.tenant_id == tenant.id)
                    .group_by(FeedbackBand.feedback_id)
                )
                return dict(rows.all())  # type: ignore[arg-type]

        before = await band_rows()
        assert len(before) == 4
        assert all(count >= 1 for count in before.values())
        deleted = await client.delete(
            f"/api/v1/customers/{customer}",
            params={"hard_delete": "true"},
            headers=bearer(tenant.admin_key),
        )
        assert deleted.status_code == 204, deleted.text
        assert set(await band_rows()) == {anonymous.json()["id"]}
        async with runtime.db.transaction(system=True) as session:
            await session.execute(sa.delete(Tenant).where(Tenant.id == tenant.id))
        assert await band_rows() == {}

    async def test_the_xxh3_migration_makes_every_sketch_and_band_key_again(self) -> None:
        """Migration 8d1e5f3a7b62 replaced the shingle hash: every stored sketch and band
        key is made again from the content, equal to what ingest makes now. Stale values
        (another hash's) are planted first, and the migration runs again over them, on a
        database of its own with nothing else writing (as `custos migrate` runs)."""
        async with own_database("custos-xxh3") as own:
            async with runtime_with(own.database_url) as runtime:
                tenant = await Factory(runtime).tenant()
                async with api_client(own, runtime) as client:
                    customer = await _customer(client, tenant)
                    made = {}
                    for text, owner in [
                        ("The parcel was late again", customer),
                        ("Checkout page froze twice, then charged me twice", customer),
                        ("Ünïcödé names are mangled on the invoice", None),
                    ]:
                        body = {"content": text} | ({"customer_id": owner} if owner else {})
                        response = await client.post(
                            BASE, json=body, headers=bearer(tenant.admin_key)
                        )
                        assert response.status_code == 201, response.text
                        made[response.json()["id"]] = (text, owner)
                async with runtime.db.transaction(system=True) as session:
                    await session.execute(
                        sa.update(Feedback).values(sketch=dedup.encode((1, 2, 3)))
                    )
                    await session.execute(sa.delete(FeedbackBand))
                    await session.execute(
                        sa.insert(FeedbackBand).values(
                            tenant_id=tenant.id, band=42, feedback_id=next(iter(made))
                        )
                    )
            # Its downgrade changes nothing: going below it and up again runs it once more.
            await asyncio.to_thread(command.downgrade, alembic_config(own), "5c2d8e4f6a17")
            await asyncio.to_thread(upgrade, own)
            async with (
                runtime_with(own.database_url) as runtime,
                runtime.db.transaction(system=True, write=False) as session,
            ):
                found = await session.execute(sa.select(Feedback.id, Feedback.sketch))
                sketches: dict[str, str] = dict(found.tuples().all())
                bands: dict[str, set[int]] = {}
                for feedback_id, band in await session.execute(
                    sa.select(FeedbackBand.feedback_id, FeedbackBand.band)
                ):
                    bands.setdefault(feedback_id, set()).add(band)
        assert set(sketches) == set(bands) == set(made)
        for feedback_id, (text, owner) in made.items():
            sketch, bins = dedup.fingerprint(dedup.normalise(text))
            assert sketches[feedback_id] == dedup.encode(sketch)
            assert bands[feedback_id] == set(dedup.band_keys(bins, owner))

    async def test_the_rekeying_migration_keeps_every_band_row_both_ways(self) -> None:
        """Migration d5a7c3e9f1b8 changes the band table's keys (and rebuilds the table on
        SQLite): down and up again, the rows are the same, and items are still found."""
        async with own_database("custos-bands-rekeyed") as own:
            async with runtime_with(own.database_url) as runtime:
                tenant = await Factory(runtime).tenant()
                async with api_client(own, runtime) as client:
                    for text in ("The parcel was late again", "Checkout froze twice today"):
                        made = await client.post(
                            BASE, json={"content": text}, headers=bearer(tenant.admin_key)
                        )
                        assert made.status_code == 201, made.text
                before = await _all_band_rows(runtime)
            assert len(before) == 32
            await asyncio.to_thread(command.downgrade, alembic_config(own), "c3f8a1e6d2b4")
            async with runtime_with(own.database_url) as runtime:
                assert await _all_band_rows(runtime) == before
            await asyncio.to_thread(upgrade, own)
            async with runtime_with(own.database_url) as runtime:
                assert await _all_band_rows(runtime) == before
                async with api_client(own, runtime) as client:
                    again = await client.post(
                        BASE,
                        json={"content": "The parcel was late again!"},
                        headers=bearer(tenant.admin_key),
                    )
                assert again.status_code == 201, again.text
                assert again.json()["duplicate_kind"] == "exact"

    async def test_band_look_up_probes_the_index_even_when_planned_without_its_values(
        self, settings: Settings, runtime: Runtime, tenant: TenantHandle
    ) -> None:
        """The driver prepares a statement after a few runs, and PostgreSQL may then plan it
        once for any values. An earlier form of this look-up ran for minutes on the
        20,000-item benchmark; this one must probe the index once per key in that plan."""
        if not settings.is_postgres:
            pytest.skip("PostgreSQL's planner")
        from custos.feedback.repository import _BAND_HITS

        query = str(_BAND_HITS).replace(":keys", "$1").replace(":tenant_id", "$2")
        async with runtime.db.transaction(tenant_id=tenant.id) as session:
            await session.execute(sa.text("SET LOCAL plan_cache_mode = force_generic_plan"))
            await session.execute(sa.text(f"PREPARE band_hits (text, text) AS {query}"))
            assert tenant.id.replace("_", "").isalnum()  # safe to quote below
            explained = await session.execute(
                sa.text(f"EXPLAIN EXECUTE band_hits ('1,2,3', '{tenant.id}')")
            )
            plan = "\n".join(explained.scalars())
            await session.execute(sa.text("DEALLOCATE band_hits"))
        assert "Index" in plan, plan
        assert "ix_feedback_bands_tenant_band" in plan, plan
        assert "Seq Scan on feedback_bands" not in plan, plan
        assert "Filter: (b.band = ANY" not in plan, plan


async def _all_band_rows(runtime: Runtime) -> set[tuple[str, int, str]]:
    async with runtime.db.transaction(system=True, write=False) as session:
        rows = await session.execute(
            sa.select(FeedbackBand.tenant_id, FeedbackBand.band, FeedbackBand.feedback_id)
        )
        return set(rows.tuples())


async def _upload(
    client: httpx.AsyncClient, tenant: TenantHandle, fmt: str, content: bytes
) -> httpx.Response:
    return await client.post(
        f"{BASE}/upload/{fmt}",
        files={"file": (f"fb.{fmt}", content)},
        headers=bearer(tenant.admin_key),
    )


async def _one_good_one_bad(
    client: httpx.AsyncClient, tenant: TenantHandle, fmt: str, content: bytes
) -> dict[str, Any]:
    """Uploads a file of one good and one bad item; returns the bad one's error."""
    response = await _upload(client, tenant, fmt, content)
    assert response.status_code == 200, (fmt, response.text)
    body = response.json()
    assert (body["created"], body["failed"]) == (1, 1), fmt
    [error] = body["errors"]
    return cast(dict[str, Any], error)


async def _ingest_in_transaction(
    runtime: Runtime, tenant_id: str, items: list[tuple[int, dict[str, Any]]], log: list[str]
) -> None:
    actor = Principal(kind=PrincipalKind.system, id="test", tenant_id=tenant_id, scopes=frozenset())
    try:
        async with runtime.db.transaction(tenant_id=tenant_id) as session:
            await feedback_service.create_many(
                session, actor, runtime.settings, items, action="feedback.batch_created"
            )
    except RuntimeError:
        log.append("failed")
        raise


class TestSentiment:
    async def test_labels_agree_with_vader_on_a_fixed_sample(
        self, raw_client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        sample = [
            "I love this product, it is amazing!",
            "Terrible service, never again.",
            "The package arrived on Tuesday.",
            "Not bad at all, quite good actually :)",
            "The app is okay but the login is really slow and frustrating.",
            "Worst purchase ever!!! Completely broken.",
            "Thanks, works as described.",
            "It is a chair.",
        ]
        response = await raw_client.post(
            f"{BASE}/batch",
            json={"items": [{"content": text} for text in sample]},
            headers=bearer(tenant.admin_key),
        )
        ids = response.json()["ids"]
        vader = SentimentIntensityAnalyzer()
        for text, feedback_id in zip(sample, ids, strict=True):
            compound = vader.polarity_scores(text)["compound"]
            expected = (
                "positive" if compound >= 0.05 else "negative" if compound <= -0.05 else "neutral"
            )
            got = (
                await raw_client.get(f"{BASE}/{feedback_id}", headers=bearer(tenant.admin_key))
            ).json()
            assert got["sentiment_label"] == expected, text
            assert got["sentiment_score"] == round(compound, 4)


class TestBatchAndUpload:
    async def test_batch_stores_the_valid_items_and_reports_the_others(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        customer = await _customer(client, tenant)
        items = [
            {"content": "Fine", "customer_id": customer},
            {"content": ""},
            {"content": "Who?", "customer_id": "cus_01M8QVGEENA8V5MZYE7B80CS5D"},
            {"content": "Also fine", "rating": 4},
        ]
        response = await client.post(
            f"{BASE}/batch", json={"items": items}, headers=bearer(tenant.admin_key)
        )
        assert response.status_code == 200
        body = response.json()
        assert (body["created"], body["failed"]) == (2, 2)
        assert [e["index"] for e in body["errors"]] == [1, 2]
        audit = await client.get(
            "/api/v1/audit",
            params={"action": "feedback.batch_created"},
            headers=bearer(tenant.admin_key),
        )
        assert len(audit.json()["items"]) == 1  # one summary row for the batch

    async def test_csv_xlsx_and_json_uploads_report_rows_by_number(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        rows = [
            ["type", "message", "stars"],
            ["bug_report", "It crashes", "2"],
            ["praise", "", "5"],
        ]
        uploads = {
            "csv": csv_bytes(rows, delimiter=";"),
            "xlsx": xlsx_bytes(rows),
            "json": json.dumps(
                [
                    {"feedback_type": "bug_report", "content": "It crashes", "rating": 2},
                    {"content": ""},
                ]
            ).encode(),
        }
        for fmt, content in uploads.items():
            error = await _one_good_one_bad(client, tenant, fmt, content)
            assert error["index"] == (2 if fmt == "json" else 3)

    async def test_awkward_text_is_stored_and_announced_exactly(
        self, client: httpx.AsyncClient, tenant: TenantHandle, runtime: Runtime
    ) -> None:
        """On PostgreSQL a call's rows and events go in by COPY, whose text format escapes
        tabs, line ends and backslashes: what comes back must be what went in."""
        texts = [
            "tab\there, new\nline, cr\rhere",
            "back\\slash and \\N and \\t taken literally",
            "ünïcødé 🙂 — «quotes» \"double\" 'single'",
            "trailing backslash \\",
        ]
        made = await client.post(
            f"{BASE}/batch",
            json={"items": [{"content": t, "subject": t[:40], "tags": ["a\\b"]} for t in texts]},
            headers=bearer(tenant.admin_key),
        )
        assert made.status_code == 200, made.text
        ids = made.json()["ids"]
        for feedback_id, text in zip(ids, texts, strict=True):
            got = await client.get(f"{BASE}/{feedback_id}", headers=bearer(tenant.admin_key))
            assert (got.json()["content"], got.json()["subject"]) == (text, text[:40])
            assert got.json()["tags"] == ["a\\b"]
        async with runtime.db.transaction(tenant_id=tenant.id, write=False) as session:
            found = await session.execute(
                sa.select(Event.subject_id, Event.payload).where(
                    Event.type == "feedback.created", Event.subject_id.in_(ids)
                )
            )
            payloads: dict[str, Any] = dict(found.tuples().all())
        assert {i: payloads[i]["feedback"]["content"] for i in ids} == dict(
            zip(ids, texts, strict=True)
        )

    async def test_a_nul_character_in_an_uploaded_file_is_a_row_error(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        uploads = {
            "csv": csv_bytes([["content"], ["fine"], ["nul \x00 here"]]),
            "json": json.dumps([{"content": "fine"}, {"content": "nul \u0000 here"}]).encode(),
        }
        for fmt, content in uploads.items():
            error = await _one_good_one_bad(client, tenant, fmt, content)
            assert error["index"] == (2 if fmt == "json" else 3), fmt
            assert "NUL" in error["errors"][0]["msg"], fmt

    async def test_a_malformed_file_is_a_clear_422(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        for fmt, content in (("json", b"{not json"), ("xlsx", b"PK\x03\x04 not a zip")):
            response = await _upload(client, tenant, fmt, content)
            assert response.status_code == 422, response.text
            assert response.headers["content-type"] == "application/problem+json"


class TestReads:
    async def test_filters_triage_and_statistics(
        self, client: httpx.AsyncClient, tenant: TenantHandle
    ) -> None:
        customer = await _customer(client, tenant)
        headers = bearer(tenant.admin_key)
        for content, kind, rating in (
            ("Awful checkout bug", "bug_report", 1),
            ("Lovely design, great work", "praise", 5),
            ("Add an export button", "feature_request", 4),
        ):
            await client.post(
                BASE,
                json={
                    "customer_id": customer,
                    "content": content,
                    "feedback_type": kind,
                    "rating": rating,
                },
                headers=headers,
            )
        listed = await client.get(BASE, params={"sentiment": "positive"}, headers=headers)
        assert [i["feedback_type"] for i in listed.json()["items"]] == ["praise"]
        found = await client.get(BASE, params={"q": "checkout BUG"}, headers=headers)
        item = found.json()["items"][0]
        assert item["feedback_type"] == "bug_report"
        moved = await client.patch(
            f"{BASE}/{item['id']}",
            json={"status": "triaged", "tags": ["checkout"]},
            headers={**headers, "If-Match": f'"{item["id"]}.1"'},
        )
        assert moved.status_code == 200
        assert moved.json()["version"] == 2
        stale = await client.patch(
            f"{BASE}/{item['id']}",
            json={"status": "resolved"},
            headers={**headers, "If-Match": f'"{item["id"]}.1"'},
        )
        assert stale.status_code == 412
        closed = await client.patch(
            f"{BASE}/{item['id']}", json={"status": "closed"}, headers=headers
        )
        assert closed.status_code == 200
        back = await client.patch(f"{BASE}/{item['id']}", json={"status": "new"}, headers=headers)
        assert back.status_code == 409
        stats = (await client.get(f"{BASE}/stats", headers=headers)).json()
        assert stats["total"] == 3
        assert stats["by_type"] == {"bug_report": 1, "feature_request": 1, "praise": 1}
        assert stats["by_status"] == {"closed": 1, "new": 2}
        assert stats["average_rating"] == pytest.approx(10 / 3, abs=1e-3)
        assert sum(stats["sentiment"].values()) == 3
        assert stats["daily"][-1]["count"] == 3
