"""SSRF-safe outbound HTTP for webhooks to customer-supplied URLs.

Every request is vetted on the way out: the URL must be http(s) without credentials, the host
is resolved exactly once, every resolved address must be globally routable, and the TCP
connection is made to one of those vetted addresses. The Host header, TLS SNI and certificate
verification keep using the original hostname, so DNS rebinding between check and connect is
impossible while HTTPS still works normally.

Usage::

    client = build_async_client(allow_http=False, allow_private=False)
    async with client.stream("POST", url, content=body, headers=signed_headers) as response:
        snippet = await read_capped(response)
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import ipaddress
import re
import socket
import ssl
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

import anyio
import anyio.to_thread
import httpcore
import httpx

# httpx exposes no public hook for swapping the network backend, so the transport drives
# httpcore itself; these keep its exceptions and streams identical to httpx's own transport.
# An ImportError here fails closed, unlike silently patching a private attribute would.
from httpx._transports.default import (
    AsyncResponseStream,
    ResponseStream,
    map_httpcore_exceptions,
)

from leadline.errors import LeadlineError

__all__ = [
    "DEFAULT_READ_LIMIT",
    "DEFAULT_TIMEOUT",
    "GuardedSyncTransport",
    "GuardedTransport",
    "IPAddress",
    "Resolver",
    "UnsafeTargetError",
    "UrlTarget",
    "build_async_client",
    "build_sync_client",
    "is_global_address",
    "literal_address",
    "parse_target",
    "read_capped",
    "resolve_vetted",
    "system_resolver",
    "validate_webhook_url",
    "vet_address",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_READ_LIMIT = 65536
DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Bounds the time a hostile DNS answer full of black-holed addresses can hold a connection slot.
_MAX_CONNECT_ATTEMPTS = 3
_MAX_KEEPALIVE_CONNECTIONS = 100
_DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


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


def _target_from_url(url: httpx.URL, *, allow_http: bool) -> UrlTarget:
    scheme = url.scheme
    if scheme not in _DEFAULT_PORTS:
        raise UnsafeTargetError("URL scheme is not allowed")
    if scheme == "http" and not allow_http:
        raise UnsafeTargetError("plain http is not allowed")
    if url.userinfo:
        raise UnsafeTargetError("credentials in the URL are not allowed")
    try:
        host = url.raw_host.decode("ascii")
        path = url.raw_path.decode("ascii")
    except UnicodeDecodeError:
        raise UnsafeTargetError("URL is not ASCII after normalisation") from None
    _check_host(host)
    port = url.port if url.port is not None else _DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise UnsafeTargetError("URL port is out of range")
    return UrlTarget(scheme=scheme, host=host, port=port, path=path)


def parse_target(url: str, *, allow_http: bool) -> UrlTarget:
    """Parse and syntax-check an outbound URL with the same parser the client uses."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        # from None: httpx's message quotes parts of the URL.
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


# --------------------------------------------------------------------------- pinned connects

# The transport resolves and vets per request, then pins the result here for the duration of
# the httpcore call. httpcore connects inside that same task/thread, so the backend below sees
# exactly the addresses vetted for the host it is asked to reach - and refuses anything else.
_PINS: contextvars.ContextVar[dict[tuple[str, int], tuple[IPAddress, ...]] | None] = (
    contextvars.ContextVar("leadline_netguard_pins", default=None)
)


@contextlib.contextmanager
def _pinned(target: UrlTarget, addresses: list[IPAddress]) -> Iterator[None]:
    pins = dict(_PINS.get() or {})
    pins[(target.host, target.port)] = tuple(addresses)
    token = _PINS.set(pins)
    try:
        yield
    finally:
        _PINS.reset(token)


def _connect_candidates(host: str, port: int) -> list[str]:
    addresses = (_PINS.get() or {}).get((host, port))
    if not addresses:
        raise UnsafeTargetError("connection attempted to an address that was not vetted")
    return [str(ip) for ip in addresses[:_MAX_CONNECT_ATTEMPTS]]


_CONNECT_ERRORS = (httpcore.ConnectError, httpcore.ConnectTimeout)


class _PinnedAsyncBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        candidates = _connect_candidates(host, port)
        connect = functools.partial(
            self._inner.connect_tcp,
            port=port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )
        for address in candidates[:-1]:
            with contextlib.suppress(*_CONNECT_ERRORS):
                return await connect(address)
        return await connect(candidates[-1])

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeTargetError("unix socket targets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PinnedSyncBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        candidates = _connect_candidates(host, port)
        connect = functools.partial(
            self._inner.connect_tcp,
            port=port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )
        for address in candidates[:-1]:
            with contextlib.suppress(*_CONNECT_ERRORS):
                return connect(address)
        return connect(candidates[-1])

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise UnsafeTargetError("unix socket targets are not allowed")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


# --------------------------------------------------------------------------- transports


@dataclass(frozen=True, slots=True)
class _Policy:
    allow_http: bool
    allow_private: bool
    resolver: Resolver

    def target(self, request: httpx.Request) -> UrlTarget:
        return _target_from_url(request.url, allow_http=self.allow_http)

    def resolve(self, target: UrlTarget) -> list[IPAddress]:
        return resolve_vetted(
            target.host, target.port, allow_private=self.allow_private, resolver=self.resolver
        )


class _PoolOptions(typing.TypedDict):
    ssl_context: ssl.SSLContext
    max_connections: int | None
    max_keepalive_connections: int | None
    keepalive_expiry: float | None


def _pool_kwargs(ssl_context: ssl.SSLContext | None, limits: httpx.Limits) -> _PoolOptions:
    return {
        # trust_env=False: no SSLKEYLOGFILE / SSL_CERT_* surprises from the environment.
        "ssl_context": ssl_context or httpx.create_ssl_context(trust_env=False),
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
    }


def _core_request(request: httpx.Request) -> httpcore.Request:
    return httpcore.Request(
        method=request.method,
        url=httpcore.URL(
            scheme=request.url.raw_scheme,
            host=request.url.raw_host,
            port=request.url.port,
            target=request.url.raw_path,
        ),
        headers=request.headers.raw,
        content=request.stream,
        extensions=request.extensions,
    )


def _unresolvable(request: httpx.Request) -> httpx.ConnectError:
    return httpx.ConnectError("host could not be resolved", request=request)


class GuardedTransport(httpx.AsyncBaseTransport):
    """Async transport that only ever connects to addresses vetted for the request's host.

    ``network_backend`` receives the vetted IP (never the hostname) in ``connect_tcp``; pass an
    instrumented backend to observe or stub connections in tests.
    """

    def __init__(
        self,
        *,
        allow_http: bool,
        allow_private: bool,
        resolver: Resolver = system_resolver,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        ssl_context: ssl.SSLContext | None = None,
        limits: httpx.Limits = _DEFAULT_LIMITS,
    ) -> None:
        self._policy = _Policy(allow_http, allow_private, resolver)
        backend = _PinnedAsyncBackend(network_backend or httpcore.AnyIOBackend())
        self._pool = httpcore.AsyncConnectionPool(
            network_backend=backend, **_pool_kwargs(ssl_context, limits)
        )

    async def _resolve(self, request: httpx.Request, target: UrlTarget) -> list[IPAddress]:
        timeout = request.extensions.get("timeout", {}).get("connect")
        resolve = functools.partial(self._policy.resolve, target)
        try:
            with anyio.fail_after(timeout):
                # abandon_on_cancel: a hung getaddrinfo must not outlive the connect timeout.
                return await anyio.to_thread.run_sync(resolve, abandon_on_cancel=True)
        except TimeoutError:
            raise httpx.ConnectTimeout("host resolution timed out", request=request) from None
        except OSError:
            raise _unresolvable(request) from None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        target = self._policy.target(request)
        addresses = await self._resolve(request, target)
        with _pinned(target, addresses), map_httpcore_exceptions():
            response = await self._pool.handle_async_request(_core_request(request))
        assert isinstance(response.stream, typing.AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=AsyncResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class GuardedSyncTransport(httpx.BaseTransport):
    """Blocking twin of GuardedTransport. DNS lookups here are bounded only by the OS."""

    def __init__(
        self,
        *,
        allow_http: bool,
        allow_private: bool,
        resolver: Resolver = system_resolver,
        network_backend: httpcore.NetworkBackend | None = None,
        ssl_context: ssl.SSLContext | None = None,
        limits: httpx.Limits = _DEFAULT_LIMITS,
    ) -> None:
        self._policy = _Policy(allow_http, allow_private, resolver)
        backend = _PinnedSyncBackend(network_backend or httpcore.SyncBackend())
        self._pool = httpcore.ConnectionPool(
            network_backend=backend, **_pool_kwargs(ssl_context, limits)
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        target = self._policy.target(request)
        try:
            addresses = self._policy.resolve(target)
        except OSError:
            raise _unresolvable(request) from None
        with _pinned(target, addresses), map_httpcore_exceptions():
            response = self._pool.handle_request(_core_request(request))
        assert isinstance(response.stream, typing.Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=ResponseStream(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


# --------------------------------------------------------------------------- clients


def _limits(max_connections: int) -> httpx.Limits:
    return httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=min(max_connections, _MAX_KEEPALIVE_CONNECTIONS),
    )


# identity: read_capped counts wire bytes, and a compressed body could inflate without bound.
_CLIENT_HEADERS = {"Accept-Encoding": "identity"}


class _ClientOptions(typing.TypedDict):
    timeout: httpx.Timeout
    follow_redirects: bool
    trust_env: bool
    headers: dict[str, str]


def _client_options(timeout: httpx.Timeout) -> _ClientOptions:
    """No redirects (each hop would need vetting), no proxies or certificates from the env."""
    return {
        "timeout": timeout,
        "follow_redirects": False,
        "trust_env": False,
        "headers": _CLIENT_HEADERS,
    }


def build_async_client(
    *,
    allow_http: bool,
    allow_private: bool,
    resolver: Resolver = system_resolver,
    network_backend: httpcore.AsyncNetworkBackend | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    max_connections: int = 500,
) -> httpx.AsyncClient:
    """An AsyncClient for customer URLs: guarded transport, no redirects, no env proxies."""
    transport = GuardedTransport(
        allow_http=allow_http,
        allow_private=allow_private,
        resolver=resolver,
        network_backend=network_backend,
        limits=_limits(max_connections),
    )
    return httpx.AsyncClient(transport=transport, **_client_options(timeout))


def build_sync_client(
    *,
    allow_http: bool,
    allow_private: bool,
    resolver: Resolver = system_resolver,
    network_backend: httpcore.NetworkBackend | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    max_connections: int = 100,
) -> httpx.Client:
    """Blocking counterpart of build_async_client."""
    transport = GuardedSyncTransport(
        allow_http=allow_http,
        allow_private=allow_private,
        resolver=resolver,
        network_backend=network_backend,
        limits=_limits(max_connections),
    )
    return httpx.Client(transport=transport, **_client_options(timeout))


async def read_capped(response: httpx.Response, limit: int = DEFAULT_READ_LIMIT) -> bytes:
    """Read at most ``limit`` raw body bytes from a streamed response, then close it.

    Bytes are as sent on the wire (content-encoding is not decoded, see _CLIENT_HEADERS).
    """
    if limit < 0:
        raise ValueError("limit must be non-negative")
    if response.is_stream_consumed:
        return response.content[:limit]
    chunks: list[bytes] = []
    remaining = limit
    try:
        if remaining > 0:
            async for chunk in response.aiter_raw():
                chunks.append(chunk[:remaining])
                remaining -= len(chunks[-1])
                if remaining <= 0:
                    break
    finally:
        await response.aclose()
    return b"".join(chunks)
