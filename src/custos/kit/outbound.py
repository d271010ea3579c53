"""An HTTP client for URLs someone else chose: the address policy is applied to the
connection actually opened, not to a separate look-up that DNS could answer differently.

httpx hands the host name to httpcore's network backend; ours resolves it, refuses the
connection if any address it resolves to is refused by the policy, connects to the address
it checked (so no second look-up can swap it), and checks the connected peer once more. TLS
still verifies the certificate against the host name. Redirects are not followed and proxy
variables in the environment are ignored, so neither can route a request elsewhere.
"""

from __future__ import annotations

import ipaddress
import typing

import httpcore
import httpx

from custos.kit.netpolicy import AddressPolicy, RefusedAddress, Resolver, resolve


class ConnectionRefusedByPolicy(httpcore.ConnectError):
    """Raised by the network backend; httpx re-raises it as httpx.ConnectError from this."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def refusal_of(exc: BaseException) -> str | None:
    """The policy's reason when a request failed because its address was refused."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedByPolicy):
            return seen.reason
        seen = seen.__cause__ or seen.__context__
    return None


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, policy: AddressPolicy, resolver: Resolver) -> None:
        self._policy = policy
        self._resolver = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        name = host.lower().rstrip(".")
        allowed_by_name = self._policy.host_allowed(name)
        if not allowed_by_name:
            reason = self._policy.name_refusal(name)
            if reason is not None:
                raise ConnectionRefusedByPolicy(f"{host}: {reason}")
        try:
            addresses = await self._resolver(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"the host does not resolve: {exc}") from exc
        if not addresses:
            raise httpcore.ConnectError("the host does not resolve")
        if not allowed_by_name:
            for address in addresses:
                reason = self._policy.ip_refusal(ipaddress.ip_address(address))
                if reason is not None:
                    raise ConnectionRefusedByPolicy(f"{host} resolves to {reason} ({address})")
        last_error: Exception | None = None
        for address in addresses:
            try:
                stream = await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                last_error = exc
                continue
            peer = stream.get_extra_info("server_addr")
            if not allowed_by_name and peer is not None:
                reason = self._policy.ip_refusal(ipaddress.ip_address(peer[0]))
                if reason is not None:
                    await stream.aclose()
                    raise ConnectionRefusedByPolicy(f"the connection reached {reason}")
            return stream
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,  # noqa: ARG002 (the backend interface)
        timeout: float | None = None,  # noqa: ARG002
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,  # noqa: ARG002
    ) -> httpcore.AsyncNetworkStream:
        raise ConnectionRefusedByPolicy("unix sockets are not reachable")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(
        self,
        policy: AddressPolicy,
        *,
        resolver: Resolver | None = None,
        limits: httpx.Limits | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=200, max_keepalive_connections=50)
        super().__init__(trust_env=False, limits=limits)
        # httpx takes no network backend, so the pool it built is replaced by one that has
        # ours; tests/kit/test_outbound.py fails if httpx stops routing through it.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(policy, resolver or resolve),
        )


def guarded_client(
    policy: AddressPolicy,
    *,
    timeout: float,
    resolver: Resolver | None = None,
    max_connections: int = 100,
) -> httpx.AsyncClient:
    # httpcore's pool looks at every connection for every request it places: keep it small.
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    return httpx.AsyncClient(
        transport=GuardedTransport(policy, resolver=resolver, limits=limits),
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
    )


__all__ = [
    "AddressPolicy",
    "ConnectionRefusedByPolicy",
    "GuardedTransport",
    "RefusedAddress",
    "guarded_client",
    "refusal_of",
]
