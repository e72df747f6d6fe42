"""SSRF-safe outbound HTTP for webhooks to customer-supplied URLs.

Every request is vetted on the way out: the URL must be http(s) without credentials, a
hostname is resolved by a resolver that refuses it unless every address it has is globally
routable, and the connect step itself refuses any address the policy does not allow, however
it was found. The Host header, TLS SNI and certificate verification keep using the original
hostname, so DNS rebinding between check and connect gains nothing while HTTPS still works.

Usage (on the event loop that runs the requests)::

    async with GuardedClient(GuardPolicy(allow_http=False, allow_private=False)) as client:
        response = await client.post(url, body, headers=signed_headers)
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

import aiohttp
import certifi
import yarl
from aiohappyeyeballs import AddrInfoType
from aiohttp.abc import AbstractResolver, ResolveResult

from leadline.errors import LeadlineError

__all__ = [
    "DEFAULT_READ_LIMIT",
    "DEFAULT_TIMEOUT",
    "GuardPolicy",
    "GuardedClient",
    "GuardedResponse",
    "IPAddress",
    "Resolver",
    "SocketFactory",
    "UnsafeTargetError",
    "UrlTarget",
    "is_global_address",
    "literal_address",
    "parse_target",
    "plain_socket",
    "read_capped",
    "resolve_vetted",
    "system_resolver",
    "validate_webhook_url",
    "vet_address",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_READ_LIMIT = 65536
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=15.0, connect=5.0)
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Bounds the time a hostile DNS answer full of black-holed addresses can hold a connection slot.
_MAX_CONNECT_ATTEMPTS = 3


class UnsafeTargetError(LeadlineError, ValueError):
    """The outbound target is refused; the message names the reason, never the URL."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------- classification

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

_METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OCI, DigitalOcean
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.170.23",  # AWS EKS pod identity
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (legacy)
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",  # AWS EKS pod identity over IPv6
    )
)
_THIS_NETWORK_V4 = _V4("0.0.0.0/8")
_LINK_LOCAL_V4 = _V4("169.254.0.0/16")

_V4_REFUSED: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_THIS_NETWORK_V4, "this-network (0/8)"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("100.64.0.0/10"), "shared address space (CGNAT)"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_LINK_LOCAL_V4, "link-local"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.0.0.0/24"), "IETF protocol assignments"),
    (_V4("192.0.2.0/24"), "documentation"),
    (_V4("192.88.99.0/24"), "6to4 relay anycast"),
    (_V4("192.168.0.0/16"), "private"),
    (_V4("198.18.0.0/15"), "benchmarking"),
    (_V4("198.51.100.0/24"), "documentation"),
    (_V4("203.0.113.0/24"), "documentation"),
    (_V4("224.0.0.0/4"), "multicast"),
    # Broadcast sits inside 240/4, so it must be matched first to get the precise reason.
    (_V4("255.255.255.255/32"), "broadcast"),
    (_V4("240.0.0.0/4"), "reserved"),
)

_COMPAT_V6 = _V6("::/96")
_TRANSLATED_V6 = _V6("::ffff:0:0:0/96")
_NAT64_V6 = _V6("64:ff9b::/96")
_TEREDO_V6 = _V6("2001::/32")

_V6_REFUSED: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::1/128"), "loopback"),
    (_TRANSLATED_V6, "IPv4-translated"),
    (_COMPAT_V6, "IPv4-compatible"),
    # The local-use NAT64 prefix may embed the IPv4 at any of several offsets, so the embedded
    # address cannot be checked reliably; it is never a public destination anyway.
    (_V6("64:ff9b:1::/48"), "local-use NAT64"),
    (_V6("100::/64"), "discard-only"),
    # Teredo clients tunnel to an embedded IPv4 relay; refusing outright is simpler than vetting.
    (_TEREDO_V6, "Teredo"),
    (_V6("2001:2::/48"), "benchmarking"),
    (_V6("2001:10::/28"), "ORCHID"),
    (_V6("2001:20::/28"), "ORCHIDv2"),
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("3fff::/20"), "documentation"),
    (_V6("5f00::/16"), "SRv6 SIDs"),
    (_V6("fc00::/7"), "private (unique local)"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local"),
    (_V6("ff00::/8"), "multicast"),
)


def _embedded_v4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address a translating/tunnelling v6 form actually reaches, if checkable."""
    if ip.ipv4_mapped is not None:
        return "IPv4-mapped", ip.ipv4_mapped
    if ip in _NAT64_V6:
        return "NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return "6to4", ip.sixtofour
    return None


def _all_embedded_v4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 a v6 address could lead to, including forms refused outright anyway."""
    found: list[ipaddress.IPv4Address] = []
    embedded = _embedded_v4(ip)
    if embedded is not None:
        found.append(embedded[1])
    if ip.teredo is not None:
        found.extend(ip.teredo)
    # ::1 and :: live inside ::/96 but are addresses in their own right, not embeddings.
    if (ip in _COMPAT_V6 and int(ip) > 1) or ip in _TRANSLATED_V6:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _classify_v4(ip: ipaddress.IPv4Address) -> tuple[bool, str]:
    for network, reason in _V4_REFUSED:
        if ip in network:
            return False, reason
    return True, "global"


def _classify_v6(ip: ipaddress.IPv6Address) -> tuple[bool, str]:
    for network, reason in _V6_REFUSED:
        if ip in network:
            return False, reason
    return True, "global"


def is_global_address(ip: IPAddress) -> tuple[bool, str]:
    """Return (ok, reason): ok only for publicly routable unicast addresses."""
    if ip.is_unspecified:
        return False, "unspecified"
    if ip in _METADATA_ADDRESSES:
        return False, "cloud metadata"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return False, "scoped address"
        embedded = _embedded_v4(ip)
        if embedded is not None:
            # These forms reach the embedded IPv4, so that address alone decides.
            kind, v4 = embedded
            ok, reason = is_global_address(v4)
            return ok, reason if ok else f"{kind} {reason}"
    ok, reason = _classify_v4(ip) if isinstance(ip, ipaddress.IPv4Address) else _classify_v6(ip)
    if not ok:
        return ok, reason
    # The stdlib registry catches ranges added after this table was written.
    if not ip.is_global:
        return False, "not globally routable"
    return True, "global"


def _always_refused_reason(ip: IPAddress) -> str | None:
    """Reasons that apply even in development (allow_private): never worth reaching."""
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        candidates.extend(_all_embedded_v4(ip))
    for candidate in candidates:
        if candidate.is_unspecified or candidate in _THIS_NETWORK_V4:
            return "unspecified"
        if candidate in _METADATA_ADDRESSES or candidate in _LINK_LOCAL_V4:
            return "cloud metadata"
    return None


def vet_address(ip: IPAddress, *, allow_private: bool) -> None:
    """Raise UnsafeTargetError unless ``ip`` may be connected to under this policy."""
    hard_reason = _always_refused_reason(ip)
    if hard_reason is not None:
        raise UnsafeTargetError(f"target address is not allowed: {hard_reason}")
    if allow_private:
        return
    ok, reason = is_global_address(ip)
    if not ok:
        raise UnsafeTargetError(f"target address is not global: {reason}")


# --------------------------------------------------------------------------- URL parsing

_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+", re.IGNORECASE)
_HOSTNAME = re.compile(r"[a-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class UrlTarget:
    """A vetted-syntax outbound target. ``path`` is kept out of repr: queries carry secrets."""

    scheme: str
    host: str
    port: int
    path: str = field(repr=False)


def _is_numeric_host(host: str) -> bool:
    labels = host.removesuffix(".").split(".")
    return all(_NUMERIC_LABEL.fullmatch(label) for label in labels)


def literal_address(host: str) -> IPAddress | None:
    """The address an IP-literal host denotes, using inet_aton rules for numeric IPv4 forms.

    ``2130706433``, ``0x7f.1`` and ``0177.0.0.1`` all mean 127.0.0.1 to common resolvers, so
    they are decoded here rather than handed to DNS. Returns None for ordinary hostnames.
    """
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise UnsafeTargetError("host is not a valid IPv6 address") from None
    if not _is_numeric_host(host):
        return None
    try:
        packed = socket.inet_aton(host.removesuffix("."))
    except OSError:
        raise UnsafeTargetError("host is a malformed numeric address") from None
    return ipaddress.IPv4Address(packed)


def _check_host(host: str) -> None:
    if not host:
        raise UnsafeTargetError("URL has no host")
    if ":" not in host and not _HOSTNAME.fullmatch(host):
        raise UnsafeTargetError("host contains characters that are not allowed")
    literal_address(host)


def _target_from_url(url: yarl.URL, *, allow_http: bool) -> UrlTarget:
    scheme = url.scheme
    if scheme not in _DEFAULT_PORTS:
        raise UnsafeTargetError("URL scheme is not allowed")
    if scheme == "http" and not allow_http:
        raise UnsafeTargetError("plain http is not allowed")
    if url.raw_user is not None or url.raw_password is not None:
        raise UnsafeTargetError("credentials in the URL are not allowed")
    host, path = url.raw_host or "", url.raw_path_qs
    if not (host.isascii() and path.isascii()):
        raise UnsafeTargetError("URL is not ASCII after normalisation")
    _check_host(host)
    port = url.port if url.port is not None else _DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise UnsafeTargetError("URL port is out of range")
    return UrlTarget(scheme=scheme, host=host, port=port, path=path)


def parse_target(url: str, *, allow_http: bool) -> UrlTarget:
    """Parse and syntax-check an outbound URL with the parser the client uses (yarl's)."""
    try:
        parsed = yarl.URL(url)
    except (ValueError, TypeError):
        # from None: the parser's message quotes parts of the URL.
        raise UnsafeTargetError("URL is not valid") from None
    return _target_from_url(parsed, allow_http=allow_http)


# --------------------------------------------------------------------------- resolution


class Resolver(Protocol):
    """Resolve a hostname to IP address strings. May raise OSError when resolution fails."""

    def __call__(self, host: str, port: int, /) -> list[str]: ...


def system_resolver(host: str, port: int, /) -> list[str]:
    """Resolve with the operating system's resolver (getaddrinfo)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def _is_localhost_name(host: str) -> bool:
    # RFC 6761: these names are loopback by definition, so refuse without asking DNS.
    name = host.lower().removesuffix(".")
    return name == "localhost" or name.endswith(".localhost")


def _parse_resolved(raw: Iterable[str]) -> list[IPAddress]:
    addresses: list[IPAddress] = []
    for text in raw:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            raise UnsafeTargetError("resolver returned an invalid address") from None
        if ip not in addresses:
            addresses.append(ip)
    return addresses


def resolve_vetted(
    host: str, port: int, *, allow_private: bool, resolver: Resolver = system_resolver
) -> list[IPAddress]:
    """Resolve ``host`` once and return its addresses, refusing if ANY of them is unsafe.

    IP-literal hosts skip DNS. Resolver failures (OSError) propagate unchanged so callers can
    treat them as transient.
    """
    if not host:
        raise UnsafeTargetError("URL has no host")
    literal = literal_address(host)
    if literal is not None:
        vet_address(literal, allow_private=allow_private)
        return [literal]
    if not allow_private and _is_localhost_name(host):
        raise UnsafeTargetError("target address is not global: loopback name")
    addresses = _parse_resolved(resolver(host, port))
    if not addresses:
        raise UnsafeTargetError("host resolved to no addresses")
    for ip in addresses:
        vet_address(ip, allow_private=allow_private)
    return addresses


def validate_webhook_url(
    url: str, *, allow_http: bool, allow_private: bool, resolver: Resolver = system_resolver
) -> None:
    """Check a webhook URL at endpoint creation; raises UnsafeTargetError with the reason."""
    target = parse_target(url, allow_http=allow_http)
    try:
        resolve_vetted(target.host, target.port, allow_private=allow_private, resolver=resolver)
    except OSError:
        raise UnsafeTargetError("host could not be resolved") from None


# --------------------------------------------------------------------------- the client

SocketFactory: TypeAlias = Callable[[AddrInfoType], socket.socket]
# Vetted answers are kept this long per host; every address dialled is vetted again anyway.
DNS_CACHE_SECONDS = 10


def plain_socket(addr_info: AddrInfoType) -> socket.socket:
    family, kind, proto, _, _ = addr_info
    return socket.socket(family=family, type=kind, proto=proto)


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    """What a GuardedClient may reach: plain http or not, private addresses or not."""

    allow_http: bool
    allow_private: bool
    resolver: Resolver = system_resolver


def _resolved(host: str, ip: IPAddress, port: int) -> ResolveResult:
    family = socket.AF_INET6 if isinstance(ip, ipaddress.IPv6Address) else socket.AF_INET
    flags = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
    return {
        "hostname": host,
        "host": str(ip),
        "port": port,
        "family": family,
        "proto": 0,
        "flags": flags,
    }


class _VettingResolver(AbstractResolver):
    """aiohttp asks this for every hostname (IP literals never reach a resolver)."""

    def __init__(self, policy: GuardPolicy) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        resolve = functools.partial(
            resolve_vetted, allow_private=self._policy.allow_private, resolver=self._policy.resolver
        )
        addresses = await asyncio.to_thread(resolve, host, port)
        return [_resolved(host, ip, port) for ip in addresses[:_MAX_CONNECT_ATTEMPTS]]

    async def close(self) -> None:
        return None


def _vetting_sockets(policy: GuardPolicy, inner: SocketFactory) -> SocketFactory:
    """The connect step itself refuses an address the policy does not allow, whichever way
    the address was found: this, not the checks before it, is what makes a refusal certain."""

    def make(addr_info: AddrInfoType) -> socket.socket:
        try:
            address = ipaddress.ip_address(str(addr_info[4][0]))
        except ValueError:
            raise UnsafeTargetError(
                "connection attempted to an address that is not an IP"
            ) from None
        vet_address(address, allow_private=policy.allow_private)
        return inner(addr_info)

    return make


def default_ssl_context() -> ssl.SSLContext:
    """certifi's roots, nothing from the environment (no SSLKEYLOGFILE, no SSL_CERT_*)."""
    return ssl.create_default_context(cafile=certifi.where())


@dataclass(frozen=True)
class GuardedResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes  # at most the read limit, as sent on the wire (never decompressed)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300


# identity: the body is capped in wire bytes, and a compressed one could inflate without bound.
_CLIENT_HEADERS = {"Accept-Encoding": "identity"}


class GuardedClient:
    """An aiohttp session for customer URLs: vetted resolution and connects, no redirects, no
    proxies or certificates from the environment, bodies read up to a cap.

    Build it on the event loop that uses it. `socket_factory` makes the socket of every
    connect after the policy admitted its address; tests pass one that records the dials.
    """

    def __init__(
        self,
        policy: GuardPolicy,
        *,
        socket_factory: SocketFactory = plain_socket,
        timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        max_connections: int = 500,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.policy = policy
        connector = aiohttp.TCPConnector(
            limit=max_connections,
            resolver=_VettingResolver(policy),
            socket_factory=_vetting_sockets(policy, socket_factory),
            ssl=ssl_context or default_ssl_context(),
            ttl_dns_cache=DNS_CACHE_SECONDS,
            happy_eyeballs_delay=None,  # one vetted address after another, as listed
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            headers=_CLIENT_HEADERS,
            auto_decompress=False,
            trust_env=False,
        )

    def vet_url(self, url: str) -> None:
        """Refuse a URL before any work: its syntax, and an IP-literal host's address."""
        target = parse_target(url, allow_http=self.policy.allow_http)
        literal = literal_address(target.host)
        if literal is not None:
            vet_address(literal, allow_private=self.policy.allow_private)

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        read_limit: int = DEFAULT_READ_LIMIT,
    ) -> GuardedResponse:
        """One request, never redirected. Raises UnsafeTargetError for a refused target,
        aiohttp.ClientError for the network's failures and TimeoutError."""
        self.vet_url(url)
        async with self._session.request(
            method, url, data=body, headers=headers, allow_redirects=False
        ) as response:
            content = await read_capped(response, read_limit)
            return GuardedResponse(response.status, response.headers, content)

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> GuardedResponse:
        return await self.request("POST", url, body=body, headers=headers)

    async def close(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> GuardedClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


async def read_capped(response: aiohttp.ClientResponse, limit: int = DEFAULT_READ_LIMIT) -> bytes:
    """At most ``limit`` body bytes; a longer body's connection is closed, not drained."""
    if limit < 0:
        raise ValueError("limit must be non-negative")
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = await response.content.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    if not response.content.at_eof():
        response.close()
    return b"".join(chunks)
