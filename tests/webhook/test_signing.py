"""Our signatures, checked with the Standard Webhooks reference library (`standardwebhooks`),
on messages a real receiver got from Custos."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from custos.webhook import signing
from tests.factories import Factory, bearer
from tests.receiver import Received, Receiver
from tests.webhook.test_delivery import make_customer, make_webhook

RunJobs = Callable[[], Awaitable[None]]


async def _one_message(
    client: httpx.AsyncClient, factory: Factory, receiver: Receiver, run_jobs: RunJobs
) -> tuple[Received, str]:
    tenant = await factory.tenant()
    hook = await make_webhook(client, tenant, f"{receiver.url}/signed")
    await make_customer(client, tenant)
    await run_jobs()
    [message] = receiver.for_path("/signed")
    return message, hook["secret"]


def _resigned_at(message: Received, secret: str, at: datetime) -> dict[str, str]:
    """The message's headers as Custos would have signed them at another time."""
    timestamp = int(at.timestamp())
    return {
        **message.headers,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.signature(secret, message.webhook_id, timestamp, message.body),
    }


class TestStandardWebhooks:
    async def test_a_delivered_message_verifies(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
    ) -> None:
        message, secret = await _one_message(client, factory, receiver, run_jobs)
        assert secret.startswith("whsec_")
        payload = Webhook(secret).verify(message.body, message.headers)
        assert payload["id"] == message.webhook_id

    async def test_a_tampered_body_is_rejected(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
    ) -> None:
        message, secret = await _one_message(client, factory, receiver, run_jobs)
        tampered = message.body.replace(b'"customer.created"', b'"customer.deleted"')
        assert tampered != message.body
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(tampered, message.headers)

    async def test_another_secret_is_rejected(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
    ) -> None:
        message, _secret = await _one_message(client, factory, receiver, run_jobs)
        with pytest.raises(WebhookVerificationError):
            Webhook(signing.new_secret()).verify(message.body, message.headers)

    @pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
    async def test_a_timestamp_six_minutes_off_is_rejected(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
        offset: timedelta,
    ) -> None:
        message, secret = await _one_message(client, factory, receiver, run_jobs)
        skewed = _resigned_at(message, secret, datetime.now(UTC) + offset)
        with pytest.raises(WebhookVerificationError, match=r"too (old|new)"):
            Webhook(secret).verify(message.body, skewed)
        # Within the 5 minutes' tolerance, the same signature scheme is accepted.
        near = _resigned_at(message, secret, datetime.now(UTC) + offset / 3)
        Webhook(secret).verify(message.body, near)

    async def test_during_rotation_both_secrets_verify_and_after_it_only_the_new(
        self,
        client: httpx.AsyncClient,
        factory: Factory,
        receiver: Receiver,
        run_jobs: RunJobs,
    ) -> None:
        tenant = await factory.tenant()
        hook = await make_webhook(client, tenant, f"{receiver.url}/rotating")
        old = hook["secret"]
        rotated = await client.post(
            f"/api/v1/webhooks/{hook['id']}/rotate-secret",
            json={"grace_period_seconds": 3600},
            headers=bearer(tenant.admin_key),
        )
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["secret"]
        assert new != old
        assert rotated.json()["previous_secret_expires_at"] is not None
        await make_customer(client, tenant)
        await run_jobs()
        [message] = receiver.for_path("/rotating")
        assert len(message.headers["webhook-signature"].split(" ")) == 2
        Webhook(new).verify(message.body, message.headers)
        Webhook(old).verify(message.body, message.headers)

        ended = await client.post(
            f"/api/v1/webhooks/{hook['id']}/rotate-secret",
            json={"grace_period_seconds": 0},
            headers=bearer(tenant.admin_key),
        )
        newest = ended.json()["secret"]
        receiver.reset()
        await make_customer(client, tenant)
        await run_jobs()
        [message] = receiver.for_path("/rotating")
        Webhook(newest).verify(message.body, message.headers)
        for retired in (old, new):
            with pytest.raises(WebhookVerificationError):
                Webhook(retired).verify(message.body, message.headers)
