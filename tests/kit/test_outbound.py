"""The guarded HTTP client refuses, on the connection it opens, every address the policy
refuses, however the URL spells it, and whatever DNS said before."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest
import sqlalchemy as sa

from custos.kit.ids import new_id
from custos.kit.netpolicy import AddressPolicy
from custos.kit.outbound import guarded_client, refusal_of
from custos.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from custos.runtime import Runtime
from tests.factories import Factory
from tests.receiver import Receiver
from tests.ssrf_forms import ELSEWHERE, loopback_forms
from tests.webhook.test_delivery import make_customer

RunJobs = Callable[[], Awaitable[None]]


async def _post(policy: AddressPolicy, url: str, resolver: object = None) -> BaseException | None:
    async with guarded_client(policy, timeout=3, resolver=resolver) as client:  # type: ignore[arg-type]
        try:
            await client.post(url, content=b"{}")
        except Exception as exc:
            return exc
    return None


class TestSendTime:
    async def test_the_receiver_is_reachable_when_the_policy_allows_it(
        self, receiver: Receiver
    ) -> None:
        assert await _post(AddressPolicy(["127.0.0.1"]), f"{receiver.url}/ok") is None
        assert len(receiver.for_path("/ok")) == 1

    @pytest.mark.parametrize("name", sorted(loopback_forms(1)))
    async def test_each_loopback_form_is_refused_on_connection(
        self, receiver: Receiver, name: str
    ) -> None:
        url = loopback_forms(receiver.port)[name]
        failure = await _post(AddressPolicy([]), url)
        assert failure is not None, f"{name} reached the receiver"
        assert receiver.received == []
        if isinstance(failure, httpx.ConnectError):
            assert refusal_of(failure), failure
        else:
            # httpx itself refuses to parse it: nothing is sent either.
            assert isinstance(failure, httpx.InvalidURL | httpx.ConnectError), failure

    @pytest.mark.parametrize("url", ELSEWHERE.values(), ids=ELSEWHERE.keys())
    async def test_metadata_and_private_addresses_are_never_reached(self, url: str) -> None:
        failure = await _post(AddressPolicy([]), url)
        assert failure is not None
        if isinstance(failure, httpx.ConnectError) and "resolve" not in str(failure):
            assert refusal_of(failure), failure

    async def test_dns_rebinding_to_a_private_address_is_refused(self, receiver: Receiver) -> None:
        async def rebound(_host: str, _port: int) -> list[str]:
            return ["127.0.0.1"]  # it said 93.184.215.14 when the URL was saved

        failure = await _post(
            AddressPolicy([]), f"http://hooks.example.com:{receiver.port}/", rebound
        )
        assert failure is not None
        assert refusal_of(failure)
        assert receiver.received == []

    async def test_one_private_answer_among_public_ones_refuses_the_name(
        self, receiver: Receiver
    ) -> None:
        async def mixed(_host: str, _port: int) -> list[str]:
            return ["93.184.215.14", "127.0.0.1"]

        failure = await _post(
            AddressPolicy([]), f"http://hooks.example.com:{receiver.port}/", mixed
        )
        assert failure is not None
        assert refusal_of(failure)


@pytest.fixture
def other_loopback() -> Iterator[Receiver]:
    """A receiver on 127.0.0.2: loopback, but not the allow-listed 127.0.0.1."""
    server = Receiver(host="127.0.0.2").start()
    yield server
    server.stop()


class TestDeliveryPipeline:
    async def test_an_endpoint_saved_before_the_rules_changed_is_refused_when_sent(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        runtime: Runtime,
        run_jobs: RunJobs,
        other_loopback: Receiver,
    ) -> None:
        tenant = await factory.tenant()
        port = other_loopback.port
        urls = [
            f"http://127.0.0.2:{port}/",
            f"http://2130706434:{port}/",
            f"http://0x7f000002:{port}/",
            f"http://127.0.2:{port}/",
            f"http://[::ffff:127.0.0.2]:{port}/",
        ]
        box = runtime.webhooks.box
        async with runtime.db.transaction(tenant_id=tenant.id) as session:
            for url in urls:
                endpoint_id = new_id("whk")
                session.add(
                    WebhookEndpoint(
                        id=endpoint_id,
                        tenant_id=tenant.id,
                        url=url,
                        event_types=["*"],
                        enabled=True,
                        headers={},
                        secret_sealed=box.seal("whsec_" + "A" * 44, endpoint_id),
                        version=1,
                    )
                )
        await make_customer(client, tenant)
        await run_jobs()
        assert other_loopback.received == []
        async with runtime.db.transaction(tenant_id=tenant.id, write=False) as session:
            outcomes = (
                await session.execute(
                    sa.select(WebhookAttempt.outcome, WebhookAttempt.error)
                    .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
                    .where(WebhookDelivery.tenant_id == tenant.id)
                )
            ).all()
        assert len(outcomes) == len(urls)
        assert {outcome for outcome, _ in outcomes} == {"refused"}
        assert all("loopback" in (error or "") for _, error in outcomes)
