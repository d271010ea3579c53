"""Sending one webhook message, safely: the address policy on the connection actually used,
a hard time limit, no redirects followed, and only the start of the answer read."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

import httpx
from limits import RateLimitItemPerSecond
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter

from custos import __version__
from custos.config import Settings
from custos.kit.netpolicy import AddressPolicy, Resolver
from custos.kit.outbound import guarded_client, refusal_of
from custos.kit.secretbox import SecretBox
from custos.kit.time import utcnow

USER_AGENT = f"Custos-Webhooks/{__version__}"
MAX_RETRY_AFTER = 86_400.0
# Receiving hosts whose connection pools are kept; the least recently used idle one goes.
MAX_HOSTS = 512


@dataclass(slots=True)
class _Host:
    client: httpx.AsyncClient
    turns: asyncio.Semaphore
    busy: int = 0

    @property
    def idle(self) -> bool:
        return self.busy == 0


@dataclass(frozen=True, slots=True)
class Outcome:
    started_at: datetime
    duration_ms: float
    status_code: int | None = None
    response_body: str | None = None
    error: str | None = None
    refused: bool = False
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410

    @property
    def label(self) -> str:
        if self.succeeded:
            return "succeeded"
        if self.refused:
            return "refused"
        return "gone" if self.gone else "failed"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait, from a delay or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            seconds = (parsedate_to_datetime(text) - utcnow()).total_seconds()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return min(max(seconds, 1.0), MAX_RETRY_AFTER)


class WebhookSender:
    def __init__(
        self, settings: Settings, limits_storage: Storage, resolver: Resolver | None = None
    ) -> None:
        self.settings = settings
        self.policy = AddressPolicy(settings.webhook_allowed_hosts)
        self.box = SecretBox(settings.secret_key.get_secret_value(), "webhook")
        self._resolver = resolver
        self._limiter = MovingWindowRateLimiter(limits_storage)
        # One small connection pool per receiving host (scheme, host, port), at most
        # webhook_concurrency_per_host messages in flight to it, webhook_send_concurrency in
        # all: httpcore's pool looks at every connection it holds for every request it
        # places, so one big pool for every receiver gets slower the more it holds.
        self._hosts: OrderedDict[tuple[str, str, int], _Host] = OrderedDict()
        self._closing: set[asyncio.Future[None]] = set()
        # Waiting for a turn happens before the timeout starts: a busy process never times
        # out a message it has not sent yet.
        self._in_flight = asyncio.Semaphore(settings.webhook_send_concurrency)
        # Messages waiting for a turn or holding one: how far sending lags behind planning.
        self.queued = 0

    def _host(self, url: str) -> _Host:
        try:
            parsed = httpx.URL(url)
            key = (parsed.scheme, parsed.host, parsed.port or 0)
        except (httpx.InvalidURL, TypeError, ValueError):
            key = ("", url, 0)
        host = self._hosts.get(key)
        if host is None:
            per_host = self.settings.webhook_concurrency_per_host
            client = guarded_client(
                self.policy,
                timeout=self.settings.webhook_timeout_seconds,
                resolver=self._resolver,
                max_connections=per_host,
            )
            host = self._hosts[key] = _Host(client, asyncio.Semaphore(per_host))
            self._evict()
        self._hosts.move_to_end(key)
        return host

    def _evict(self) -> None:
        while len(self._hosts) > MAX_HOSTS:
            for key, host in self._hosts.items():
                if host.idle:
                    del self._hosts[key]
                    task = asyncio.ensure_future(host.client.aclose())
                    self._closing.add(task)
                    task.add_done_callback(self._closing.discard)
                    break
            else:
                return

    async def aclose(self) -> None:
        hosts, self._hosts = list(self._hosts.values()), OrderedDict()
        for host in hosts:
            await host.client.aclose()

    async def wait_for_rate_limit(self, endpoint_id: str, per_second: int | None) -> float:
        """0 when a message may go now (and counts it), else how long to wait."""
        if not per_second:
            return 0.0
        item = RateLimitItemPerSecond(per_second)
        try:
            if await self._limiter.hit(item, "webhook", endpoint_id):
                return 0.0
            reset, _remaining = await self._limiter.get_window_stats(item, "webhook", endpoint_id)
        except Exception:  # the limit store is away: send rather than hold messages back
            return 0.0
        return max(0.05, reset - time.time())

    async def fewer_queued_than(self, count: int, timeout: float) -> None:
        """Returns once fewer than `count` messages are queued, or after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.queued >= count and time.monotonic() < deadline:
            await asyncio.sleep(0.005)

    @asynccontextmanager
    async def turn(self, url: str) -> AsyncIterator[Turn]:
        """One of the receiving host's turns, held for as long as the caller needs: the
        caller keeps it from sending a message until its answer is recorded, so what a
        killed worker had sent and not yet recorded is at most one message per turn."""
        host = self._host(url)
        host.busy += 1
        self.queued += 1
        try:
            async with self._in_flight, host.turns:
                yield Turn(self, host.client, url)
        finally:
            host.busy -= 1
            self.queued -= 1

    async def _send(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str], body: bytes
    ) -> Outcome:
        started_at = utcnow()
        started = time.perf_counter()
        limit = self.settings.webhook_response_max_bytes

        def elapsed() -> float:
            return round((time.perf_counter() - started) * 1000, 2)

        request_headers = {
            **headers,
            "content-type": "application/json",
            "user-agent": USER_AGENT,
        }
        try:
            async with asyncio.timeout(self.settings.webhook_timeout_seconds):
                async with client.stream(
                    "POST", url, content=body, headers=request_headers
                ) as response:
                    received = bytearray()
                    async for chunk in response.aiter_raw():
                        received += chunk
                        if len(received) >= limit:
                            break
                    status = response.status_code
                    retry_after = (
                        parse_retry_after(response.headers.get("retry-after"))
                        if status in (429, 503)
                        else None
                    )
                    location = response.headers.get("location") if 300 <= status < 400 else None
        except TimeoutError:
            return Outcome(started_at, elapsed(), error="timed out")
        except httpx.HTTPError as exc:
            reason = refusal_of(exc)
            if reason is not None:
                return Outcome(started_at, elapsed(), error=f"refused: {reason}", refused=True)
            return Outcome(started_at, elapsed(), error=_describe(exc))
        # PostgreSQL text holds no NUL characters.
        text = (
            bytes(received[:limit]).decode("utf-8", errors="replace").replace("\x00", "")
            if limit
            else None
        )
        error = None
        if location is not None:
            error = "redirect not followed"
        elif not 200 <= status < 300:
            error = f"HTTP {status}"
        return Outcome(
            started_at,
            elapsed(),
            status_code=status,
            response_body=text or None,
            error=error,
            retry_after=retry_after,
        )


@dataclass(frozen=True, slots=True)
class Turn:
    sender: WebhookSender
    client: httpx.AsyncClient
    url: str

    async def send(self, headers: dict[str, str], body: bytes) -> Outcome:
        return await self.sender._send(self.client, self.url, headers, body)


def _describe(exc: httpx.HTTPError) -> str:
    kind = type(exc).__name__
    detail = str(exc).strip()
    return f"{kind}: {detail}"[:500] if detail else kind
