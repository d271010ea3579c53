"""Which network addresses Custos may call out to (webhooks, and any outbound HTTP after them).

Server-side request forgery protection: a URL someone else chose must not make Custos talk to
its own host, the private network it runs in, or a cloud metadata service. Only public
(globally routable) addresses are allowed, unless the operator's allow-list
(`CUSTOS_WEBHOOK_ALLOWED_HOSTS`: host names, addresses and CIDRs) names them.

Host names are normalised the way resolvers and browsers read them, so the numeric tricks
(`2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1`), full-width digits and dots, and IPv6
forms that embed an IPv4 address (`::ffff:127.0.0.1`, NAT64, 6to4) are seen for what they
are. The check is made when a URL is saved and again on the connection actually opened
(`kit/outbound.py`), so a name that resolves differently later (DNS rebinding) is caught.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_URL_LENGTH = 2048

_V4_BLOCKS: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "an unspecified address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a carrier-grade NAT address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address (cloud metadata lives here)"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "an IETF protocol address (some cloud metadata lives here)"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.88.99.0/24", "a 6to4 relay address"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
)
_V6_BLOCKS: tuple[tuple[str, str], ...] = (
    ("::/128", "an unspecified address"),
    ("::1/128", "a loopback address"),
    ("::ffff:0:0/96", "an IPv4-mapped address"),
    ("::/96", "an IPv4-compatible address"),
    ("64:ff9b:1::/48", "a local NAT64 address"),
    ("100::/64", "a discard address"),
    ("2001::/32", "a Teredo address"),
    ("2001:db8::/32", "a documentation address"),
    ("fc00::/7", "a unique local address (cloud metadata lives here)"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
)
_BLOCKS: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(cidr), reason) for cidr, reason in _V4_BLOCKS + _V6_BLOCKS
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_6TO4 = ipaddress.ip_network("2002::/16")

# Names that mean "this machine" or "the private network" whatever DNS says.
_BLOCKED_NAMES = frozenset({"localhost", "metadata", "metadata.google.internal", "instance-data"})
_BLOCKED_SUFFIXES = (".localhost", ".internal", ".local", ".home.arpa", ".localdomain")

# Every character IDNA treats as a label separator.
_DOTS = re.compile("[\u002e\u3002\uff0e\uff61]")
_NUMERIC_PART = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)$")
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


class RefusedAddress(ValueError):
    """The URL or address may not be called; `reason` says why, in plain words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_allow_entry(entry: str) -> IPNetwork | str:
    """An allow-list entry: a network (an address is a /32 or /128) or a host name."""
    text = entry.strip()
    try:
        return ipaddress.ip_network(text.strip("[]"), strict=False)
    except ValueError:
        pass
    try:
        host = normalise_host(text)
    except RefusedAddress:
        host = ""
    if not host or len(host) > 253 or not all(_LABEL.match(p) for p in host.split(".")):
        raise ValueError(f"{entry!r} is neither a host name, an address nor a CIDR")
    return host


def blocked_reason(ip: IPAddress) -> str | None:
    """Why this address is not public, or None when it is."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        inner = blocked_reason(ip.ipv4_mapped)
        # A public address written this way is refused too: no receiver needs it.
        return f"an IPv4-mapped form of {ip.ipv4_mapped}, {inner or 'a public address'}"
    for network, reason in _BLOCKS:
        if ip.version == network.version and ip in network:
            return reason
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner = blocked_reason(embedded)
            if inner is not None:
                return f"an IPv6 address embedding {embedded}, {inner}"
            return None
    if not ip.is_global:
        return "not a public address"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _6TO4:
        return ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
    return None


def _numeric_ipv4(host: str) -> ipaddress.IPv4Address:
    """An IPv4 address written any way inet_aton(3) reads it: 1 to 4 parts, each decimal,
    octal (leading 0) or hex (0x); the last part fills the remaining bytes."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        raise RefusedAddress("the host is a malformed numeric address")
    values = []
    for part in parts:
        try:
            if part[:2].lower() == "0x":
                values.append(int(part[2:], 16))
            elif len(part) > 1 and part.startswith("0"):
                values.append(int(part, 8))
            else:
                values.append(int(part, 10))
        except ValueError:
            raise RefusedAddress("the host is a malformed numeric address") from None
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        raise RefusedAddress("the host is a malformed numeric address")
    number = 0
    for value in head:
        number = number << 8 | value
    number = number << (8 * (4 - len(head))) | last
    return ipaddress.IPv4Address(number)


def normalise_host(host: str) -> str:
    """Lower-case ASCII (IDNA), no trailing dot, after Unicode compatibility folding, so
    full-width letters, circled digits and ideographic dots are read as resolvers read them."""
    text = _DOTS.sub(".", unicodedata.normalize("NFKC", host)).lower().rstrip(".")
    if not text:
        raise RefusedAddress("the URL has no host")
    try:
        ascii_host = text.encode("idna").decode("ascii")
    except UnicodeError:
        raise RefusedAddress("the host is not a valid name") from None
    return ascii_host.lower()


def literal_ip(host: str) -> IPAddress | None:
    """The address a host names without DNS (any numeric form), or None for a name."""
    if host.startswith("[") and host.endswith("]"):
        try:
            return ipaddress.IPv6Address(host[1:-1].split("%", 1)[0])
        except ValueError:
            raise RefusedAddress("the host is a malformed IPv6 address") from None
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise RefusedAddress("the host is a malformed address") from None
    labels = host.split(".")
    if _NUMERIC_PART.match(labels[-1]):
        # Like the WHATWG URL parser: a numeric last label makes the whole host an IPv4
        # address, which must then parse (so `evil.0x7f` is refused, not resolved).
        if not all(_NUMERIC_PART.match(label) for label in labels):
            raise RefusedAddress("the host mixes a name with a numeric address")
        return _numeric_ipv4(host)
    return None


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str  # normalised: lower-case ASCII, IPv6 without brackets
    port: int
    ip: IPAddress | None  # set when the host is an address


class AddressPolicy:
    """Public addresses, plus what the operator's allow-list names."""

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        entries = [parse_allow_entry(entry) for entry in allowed]
        self.networks = tuple(e for e in entries if not isinstance(e, str))
        self.hosts = frozenset(e for e in entries if isinstance(e, str))

    def host_allowed(self, host: str) -> bool:
        return host in self.hosts

    def name_refusal(self, host: str) -> str | None:
        """Names that mean this machine or a private network, whatever DNS answers."""
        if self.host_allowed(host):
            return None
        if host in _BLOCKED_NAMES or host.endswith(_BLOCKED_SUFFIXES):
            return "the host names this machine or a private network"
        return None

    def ip_refusal(self, ip: IPAddress) -> str | None:
        """Why Custos may not connect to `ip`, or None when it may."""
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        for candidate in candidates:
            if any(candidate.version == net.version and candidate in net for net in self.networks):
                return None
        return blocked_reason(ip)

    def check_url(self, url: str) -> Target:
        """Refuse a URL whose form alone makes it unsafe (no DNS is consulted)."""
        if len(url) > MAX_URL_LENGTH:
            raise RefusedAddress(f"the URL is longer than {MAX_URL_LENGTH} characters")
        if any(ch.isspace() or ord(ch) < 32 for ch in url) or "\\" in url:
            raise RefusedAddress("the URL contains whitespace, control characters or backslashes")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise RefusedAddress("the URL is malformed") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise RefusedAddress("only http and https URLs can be called")
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise RefusedAddress("credentials in the URL are not accepted; use custom headers")
        raw_host = parts.hostname
        if not raw_host:
            raise RefusedAddress("the URL has no host")
        if ":" in raw_host:
            host = raw_host.split("%", 1)[0].lower()
        else:
            host = normalise_host(raw_host)
            labels = host.split(".")
            well_formed = len(host) <= 253 and all(_LABEL.match(label) for label in labels)
            if not well_formed and literal_ip(host) is None:
                raise RefusedAddress("the host is not a valid name")
        ip = literal_ip(host)
        target = Target(scheme, host, port or (443 if scheme == "https" else 80), ip)
        if self.host_allowed(host):
            return target
        if ip is not None:
            reason = self.ip_refusal(ip)
            if reason is not None:
                raise RefusedAddress(f"the host is {reason}")
        else:
            reason = self.name_refusal(host)
            if reason is not None:
                raise RefusedAddress(reason)
        return target

    async def check_resolved(
        self, url: str, resolver: Resolver | None = None, timeout: float = 3.0
    ) -> Target:
        """check_url, then every address the name resolves to now. A name that does not
        resolve is let through: it is checked again, resolved, when it is called."""
        target = self.check_url(url)
        if target.ip is not None or self.host_allowed(target.host):
            return target
        try:
            async with asyncio.timeout(timeout):
                addresses = await (resolver or resolve)(target.host, target.port)
        except (OSError, TimeoutError):
            return target
        for address in addresses:
            reason = self.ip_refusal(ipaddress.ip_address(address))
            if reason is not None:
                raise RefusedAddress(f"the host resolves to {reason}")
        return target


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, as the system resolver answers (numeric forms
    included: getaddrinfo reads `2130706433` as 127.0.0.1)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    seen: dict[str, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]).split("%", 1)[0], None)
    return list(seen)
