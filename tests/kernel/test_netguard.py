"""Tests for the SSRF guard.

Safety rule for this file: nothing here may open a connection outside 127.0.0.0/8 or ::1.
Every client is built with a recording network backend that refuses to dial anything that is
not loopback, and DNS is always a fake resolver, so even a guard bug cannot leak traffic.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given
from hypothesis import strategies as st

from leadline import netguard
from leadline.netguard import (
    GuardedTransport,
    UnsafeTargetError,
    UrlTarget,
    build_async_client,
    build_sync_client,
    is_global_address,
    parse_target,
    read_capped,
    resolve_vetted,
    validate_webhook_url,
    vet_address,
)
from tests.support.http import QuietHandler, serving
from tests.support.netguard import (
    PUBLIC_IP,
    FakeResolver,
    RecordingBackend,
    RecordingSyncBackend,
    assert_no_connection,
)

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def no_dns(host: str, port: int) -> list[str]:
    raise AssertionError("DNS must not be consulted for this host")


# --------------------------------------------------------------------------- local servers


@dataclass
class SeenRequest:
    host: str | None
    path: str


class _Handler(QuietHandler):
    protocol_version = "HTTP/1.1"
    server: _RecordingServer

    def _endless(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"x" * 16384
        frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        try:
            for _ in range(4096):  # 64 MiB ceiling so a broken test still terminates
                self.wfile.write(frame)
        except OSError:
            return

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.seen.append(SeenRequest(self.headers.get("Host"), self.path))
        if self.path == "/redirect-private":
            self.reply(302, b"", {"Location": "http://10.0.0.1/"})
        elif self.path == "/redirect-metadata":
            self.reply(302, b"", {"Location": "http://169.254.169.254/latest/meta-data/"})
        elif self.path == "/endless":
            self._endless()
        else:
            self.reply(200, b"ok")

    do_GET = _handle
    do_POST = _handle


class _RecordingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[SeenRequest] = []
        self.sni: list[str | None] = []
        self.ca_file: Path | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@pytest.fixture
def http_server() -> Iterator[_RecordingServer]:
    with serving(_RecordingServer()) as server:
        yield server


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A bare 127.0.0.1 listener used to prove that no connection arrives."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield sock
    finally:
        sock.close()


@pytest.fixture
def listener_v6() -> Iterator[socket.socket | None]:
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.bind(("::1", 0))
    except OSError:
        yield None
        return
    sock.listen(8)
    try:
        yield sock
    finally:
        sock.close()


# --------------------------------------------------------------------------- address policy


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private (unique local)"),
        ("fd12:3456::1", "private (unique local)"),
        ("169.254.10.10", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "shared address space (CGNAT)"),
        ("0.1.2.3", "this-network (0/8)"),
        ("198.18.0.1", "benchmarking"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "broadcast"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("192.0.2.1", "documentation"),
        ("198.51.100.1", "documentation"),
        ("203.0.113.1", "documentation"),
        ("2001:db8::1", "documentation"),
        ("fec0::1", "site-local"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
        ("::ffff:10.0.0.1", "IPv4-mapped private"),
        ("::127.0.0.1", "IPv4-compatible"),
        ("64:ff9b::a9fe:a9fe", "NAT64 cloud metadata"),
        ("64:ff9b::10.0.0.1", "NAT64 private"),
        ("64:ff9b:1::a00:1", "local-use NAT64"),
        ("2002:7f00:1::", "6to4 loopback"),
        ("2002:a9fe:a9fe::1", "6to4 cloud metadata"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ],
)
def test_refused_addresses(address: str, reason: str) -> None:
    assert is_global_address(ipaddress.ip_address(address)) == (False, reason)


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", PUBLIC_IP, "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"],
)
def test_global_addresses_allowed(address: str) -> None:
    assert is_global_address(ipaddress.ip_address(address)) == (True, "global")


def test_scoped_ipv6_refused() -> None:
    assert is_global_address(ipaddress.IPv6Address("2606:4700::1111%eth0"))[0] is False


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "169.254.1.1",
        "fd00:ec2::254",
        "100.100.100.200",
        "0.0.0.0",
        "::",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "2002:a9fe:a9fe::",
        "::ffff:0.0.0.0",
    ],
)
def test_metadata_and_unspecified_refused_even_in_development(address: str) -> None:
    with pytest.raises(UnsafeTargetError, match="target address is not allowed"):
        vet_address(ipaddress.ip_address(address), allow_private=True)


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.0.0.1", "192.168.1.1"])
def test_development_allows_private_receivers(address: str) -> None:
    ip = ipaddress.ip_address(address)
    with pytest.raises(UnsafeTargetError, match="target address is not global"):
        vet_address(ip, allow_private=False)
    assert vet_address(ip, allow_private=True) is None  # the same address, allowed


_v4 = st.integers(min_value=0, max_value=2**32 - 1).map(ipaddress.IPv4Address)
_v6 = st.integers(min_value=0, max_value=2**128 - 1).map(ipaddress.IPv6Address)


@given(_v4)
def test_never_allows_what_stdlib_calls_non_global_v4(ip: ipaddress.IPv4Address) -> None:
    ok, _ = is_global_address(ip)
    assert not ok or ip.is_global


@given(_v6)
def test_v6_allowed_only_if_global_or_embedding_global_v4(ip: ipaddress.IPv6Address) -> None:
    ok, _ = is_global_address(ip)
    if ok:
        embedded = netguard._all_embedded_v4(ip)
        assert ip.is_global or any(is_global_address(v4)[0] for v4 in embedded)


@given(_v4)
def test_embedded_forms_classify_like_their_ipv4(ip: ipaddress.IPv4Address) -> None:
    expected = is_global_address(ip)[0]
    n = int(ip)
    mapped = ipaddress.IPv6Address((0xFFFF << 32) | n)
    nat64 = ipaddress.IPv6Address((0x64FF9B << 96) | n)
    sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (n << 80))
    for wrapped in (mapped, nat64, sixtofour):
        assert is_global_address(wrapped)[0] is expected


@given(st.sampled_from(sorted(map(str, netguard._METADATA_ADDRESSES))), st.booleans())
def test_metadata_never_passes_any_policy(address: str, allow_private: bool) -> None:
    with pytest.raises(UnsafeTargetError):
        vet_address(ipaddress.ip_address(address), allow_private=allow_private)


# --------------------------------------------------------------------------- URL parsing


def test_parse_target_fields_and_default_ports() -> None:
    target = parse_target("https://Hooks.Example.com/a/b?x=1", allow_http=False)
    assert target == UrlTarget(scheme="https", host="hooks.example.com", port=443, path="/a/b?x=1")
    assert parse_target("http://[::1]:8080", allow_http=True).host == "::1"
    assert parse_target("http://example.com", allow_http=True).port == 80


def test_target_repr_hides_path_and_query() -> None:
    assert "secret" not in repr(parse_target("https://a.example/p?token=secret", allow_http=False))


@pytest.mark.parametrize(
    ("url", "allow_http", "message"),
    [
        ("ftp://example.com/", True, "scheme"),
        ("file:///etc/passwd", True, "scheme"),
        ("gopher://example.com/", True, "scheme"),
        ("//example.com/", True, "scheme"),
        ("http://example.com/", False, "plain http"),
        ("https://user:pw@example.com/", False, "credentials"),
        ("https://user@example.com/", False, "credentials"),
        ("https:///path", False, "no host"),
        ("https://:443/path", False, "no host"),
        ("https://example.com:99999/", False, "port"),
        ("https://example.com:0/", False, "port"),
        ("https://1.2.3.4.5/", False, "malformed numeric"),
        ("https://0x/", False, "malformed numeric"),
        ("https://%31%32%37.0.0.1/", False, "characters"),
        ("https://0177.0.0.1/", False, "not valid"),
        ("http://[::1/", True, "not valid"),
    ],
)
def test_parse_target_refusals(url: str, allow_http: bool, message: str) -> None:
    with pytest.raises(UnsafeTargetError, match=message):
        parse_target(url, allow_http=allow_http)


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "0177.0.0.1", "127.1", "0x7f000001"])
def test_inet_aton_forms_decode_to_loopback_without_dns(host: str) -> None:
    assert netguard.literal_address(host) == ipaddress.IPv4Address("127.0.0.1")
    with pytest.raises(UnsafeTargetError, match="loopback"):
        resolve_vetted(host, 80, allow_private=False, resolver=no_dns)


def test_error_message_never_contains_url_parts() -> None:
    with pytest.raises(UnsafeTargetError) as info:
        validate_webhook_url(
            "http://10.0.0.1/hook?token=s3cret", allow_http=True, allow_private=False
        )
    assert str(info.value) == "target address is not global: private"
    assert "s3cret" not in str(info.value)
    assert "10.0.0.1" not in str(info.value)


# --------------------------------------------------------------------------- resolution


def test_resolve_once_and_return_vetted_addresses() -> None:
    resolver = FakeResolver({"hooks.example.test": [PUBLIC_IP, PUBLIC_IP, "2606:4700::1111"]})
    addresses = resolve_vetted("hooks.example.test", 443, allow_private=False, resolver=resolver)
    assert addresses == [ipaddress.ip_address(PUBLIC_IP), ipaddress.ip_address("2606:4700::1111")]
    assert resolver.calls == [("hooks.example.test", 443)]


def test_any_private_answer_refuses_the_host() -> None:
    resolver = FakeResolver({"mixed.example.test": [PUBLIC_IP, "10.0.0.5"]})
    with pytest.raises(UnsafeTargetError, match="private"):
        resolve_vetted("mixed.example.test", 443, allow_private=False, resolver=resolver)


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "api.localhost"])
def test_localhost_names_refused_without_dns(host: str) -> None:
    with pytest.raises(UnsafeTargetError, match="loopback"):
        resolve_vetted(host, 80, allow_private=False, resolver=no_dns)


def test_empty_or_garbage_resolver_answers_refused() -> None:
    with pytest.raises(UnsafeTargetError, match="no addresses"):
        resolve_vetted("a.test", 80, allow_private=False, resolver=FakeResolver({"a.test": []}))
    with pytest.raises(UnsafeTargetError, match="invalid address"):
        resolve_vetted(
            "a.test", 80, allow_private=False, resolver=FakeResolver({"a.test": ["nope"]})
        )


def test_validate_webhook_url() -> None:
    resolver = FakeResolver({"hooks.example.test": [PUBLIC_IP]})
    validate_webhook_url(
        "https://hooks.example.test/in?k=v",
        allow_http=False,
        allow_private=False,
        resolver=resolver,
    )
    with pytest.raises(UnsafeTargetError, match="could not be resolved"):
        validate_webhook_url(
            "https://missing.example.test/",
            allow_http=False,
            allow_private=False,
            resolver=resolver,
        )
    with pytest.raises(UnsafeTargetError, match="plain http"):
        validate_webhook_url(
            "http://hooks.example.test/", allow_http=False, allow_private=False, resolver=resolver
        )


# --------------------------------------------------------------------------- transport: refusals

# (url template, fake DNS table); {port} is the 127.0.0.1 listener's port.
REFUSED_TARGETS: list[tuple[str, dict[str, list[str]]]] = [
    ("http://127.0.0.1:{port}/", {}),
    ("http://localhost:{port}/", {"localhost": ["127.0.0.1", "::1"]}),
    ("http://[::1]:{port}/", {}),
    ("http://[::ffff:127.0.0.1]:{port}/", {}),
    ("http://2130706433:{port}/", {}),
    ("http://0x7f.1:{port}/", {}),
    ("http://169.254.169.254/latest/meta-data/", {}),
    ("http://[64:ff9b::a9fe:a9fe]/", {}),
    ("http://100.64.0.1/", {}),
    ("http://10.0.0.1/", {}),
    ("http://[2002:7f00:1::]/", {}),
    ("http://[fe80::1]/", {}),
    ("http://198.18.0.1/", {}),
    ("http://240.0.0.1/", {}),
    ("http://0.0.0.0:{port}/", {}),
    ("http://internal.example.test/", {"internal.example.test": ["10.1.2.3"]}),
    ("http://mixed.example.test/", {"mixed.example.test": [PUBLIC_IP, "192.168.0.7"]}),
    ("http://rebind.example.test:{port}/", {"rebind.example.test": ["127.0.0.1"]}),
]


@pytest.mark.parametrize(("template", "dns"), REFUSED_TARGETS)
def test_guarded_client_refuses_before_connecting(
    template: str, dns: dict[str, list[str]], listener: socket.socket
) -> None:
    url = template.format(port=listener.getsockname()[1]) + "?token=s3cret"
    backend = RecordingBackend()
    resolver = FakeResolver(dns) if dns else no_dns

    async def attempt() -> None:
        async with build_async_client(
            allow_http=True, allow_private=False, resolver=resolver, network_backend=backend
        ) as client:
            await client.post(url, content=b"{}")

    with pytest.raises(UnsafeTargetError) as info:
        run(attempt())
    assert "s3cret" not in str(info.value)
    assert backend.calls == []
    assert_no_connection(listener)


def test_ipv6_loopback_listener_sees_nothing(listener_v6: socket.socket | None) -> None:
    if listener_v6 is None:
        pytest.skip("no IPv6 loopback in this environment")
    backend = RecordingBackend()
    url = f"http://[::1]:{listener_v6.getsockname()[1]}/"

    async def attempt() -> None:
        async with build_async_client(
            allow_http=True, allow_private=False, resolver=no_dns, network_backend=backend
        ) as client:
            await client.get(url)

    with pytest.raises(UnsafeTargetError, match="loopback"):
        run(attempt())
    assert backend.calls == []
    assert_no_connection(listener_v6)


def test_https_only_client_refuses_plain_http() -> None:
    backend = RecordingBackend()

    async def attempt() -> None:
        async with build_async_client(
            allow_http=False, allow_private=True, resolver=no_dns, network_backend=backend
        ) as client:
            await client.get("http://127.0.0.1:1/")

    with pytest.raises(UnsafeTargetError, match="plain http"):
        run(attempt())
    assert backend.calls == []


def test_dns_failure_is_a_transient_connect_error() -> None:
    backend = RecordingBackend()

    async def attempt() -> None:
        async with build_async_client(
            allow_http=True, allow_private=False, resolver=FakeResolver(), network_backend=backend
        ) as client:
            await client.get("http://missing.example.test/")

    with pytest.raises(httpx.ConnectError, match="could not be resolved"):
        run(attempt())
    assert backend.calls == []


def test_pinned_backend_refuses_unvetted_connects() -> None:
    backend = RecordingBackend()
    pinned = netguard._PinnedAsyncBackend(backend)
    with pytest.raises(UnsafeTargetError, match="not vetted"):
        run(pinned.connect_tcp("127.0.0.1", 80))
    assert backend.calls == []


# --------------------------------------------------------------------------- transport: redirects


def test_redirect_to_private_address_is_returned_not_followed(
    http_server: _RecordingServer,
) -> None:
    backend = RecordingBackend()

    async def attempt() -> httpx.Response:
        async with build_async_client(
            allow_http=True, allow_private=True, resolver=no_dns, network_backend=backend
        ) as client:
            return await client.get(f"http://127.0.0.1:{http_server.port}/redirect-private")

    response = run(attempt())
    assert response.status_code == 302
    assert response.headers["Location"] == "http://10.0.0.1/"
    assert backend.calls == [("127.0.0.1", http_server.port)]


def test_opt_in_redirects_are_still_vetted_per_hop(http_server: _RecordingServer) -> None:
    backend = RecordingBackend()

    async def attempt() -> None:
        async with build_async_client(
            allow_http=True, allow_private=True, resolver=no_dns, network_backend=backend
        ) as client:
            url = f"http://127.0.0.1:{http_server.port}/redirect-metadata"
            await client.get(url, follow_redirects=True)

    with pytest.raises(UnsafeTargetError, match="cloud metadata"):
        run(attempt())
    assert backend.calls == [("127.0.0.1", http_server.port)]


# --------------------------------------------------------------------------- transport: success


def test_request_to_local_receiver_in_development(http_server: _RecordingServer) -> None:
    backend = RecordingBackend()

    async def attempt() -> httpx.Response:
        async with build_async_client(
            allow_http=True, allow_private=True, resolver=no_dns, network_backend=backend
        ) as client:
            return await client.post(f"http://127.0.0.1:{http_server.port}/hook", content=b"{}")

    response = run(attempt())
    assert response.status_code == 200
    assert response.content == b"ok"
    assert http_server.seen == [SeenRequest(f"127.0.0.1:{http_server.port}", "/hook")]
    assert backend.calls == [("127.0.0.1", http_server.port)]


def test_connects_to_vetted_ip_but_keeps_host_header(http_server: _RecordingServer) -> None:
    backend = RecordingBackend()
    resolver = FakeResolver({"hooks.example.test": ["127.0.0.1"]})
    url = f"http://hooks.example.test:{http_server.port}/hook?id=1"

    async def attempt() -> httpx.Response:
        async with build_async_client(
            allow_http=True, allow_private=True, resolver=resolver, network_backend=backend
        ) as client:
            return await client.post(url, content=b"{}")

    assert run(attempt()).status_code == 200
    assert http_server.seen == [SeenRequest(f"hooks.example.test:{http_server.port}", "/hook?id=1")]
    assert backend.calls == [("127.0.0.1", http_server.port)]
    assert resolver.calls == [("hooks.example.test", http_server.port)]


def test_each_request_resolves_exactly_once(http_server: _RecordingServer) -> None:
    backend = RecordingBackend()
    resolver = FakeResolver({"hooks.example.test": ["127.0.0.1"]})
    url = f"http://hooks.example.test:{http_server.port}/"

    async def attempt() -> None:
        async with build_async_client(
            allow_http=True, allow_private=True, resolver=resolver, network_backend=backend
        ) as client:
            await client.get(url)
            await client.get(url)

    run(attempt())
    assert len(resolver.calls) == 2
    assert backend.calls == [("127.0.0.1", http_server.port)]  # keep-alive reused it


def test_falls_back_to_next_vetted_address(http_server: _RecordingServer) -> None:
    # Nothing listens on 127.0.0.2 (the server binds 127.0.0.1 only), so that dial is refused.
    backend = RecordingBackend()
    resolver = FakeResolver({"hooks.example.test": ["127.0.0.2", "127.0.0.1"]})

    async def attempt() -> httpx.Response:
        async with build_async_client(
            allow_http=True, allow_private=True, resolver=resolver, network_backend=backend
        ) as client:
            return await client.get(f"http://hooks.example.test:{http_server.port}/")

    assert run(attempt()).status_code == 200
    assert backend.calls == [("127.0.0.2", http_server.port), ("127.0.0.1", http_server.port)]


def test_sync_client_guards_and_pins(http_server: _RecordingServer) -> None:
    backend = RecordingSyncBackend()
    resolver = FakeResolver({"hooks.example.test": ["127.0.0.1"]})
    with build_sync_client(
        allow_http=True, allow_private=True, resolver=resolver, network_backend=backend
    ) as client:
        response = client.get(f"http://hooks.example.test:{http_server.port}/sync")
        with pytest.raises(UnsafeTargetError, match="cloud metadata"):
            client.get("http://169.254.169.254/")
    assert response.status_code == 200
    assert http_server.seen == [SeenRequest(f"hooks.example.test:{http_server.port}", "/sync")]
    assert backend.calls == [("127.0.0.1", http_server.port)]


def test_sync_client_refuses_private_in_production(listener: socket.socket) -> None:
    backend = RecordingSyncBackend()
    with (
        build_sync_client(
            allow_http=True, allow_private=False, resolver=no_dns, network_backend=backend
        ) as client,
        pytest.raises(UnsafeTargetError, match="loopback"),
    ):
        client.get(f"http://127.0.0.1:{listener.getsockname()[1]}/")
    assert backend.calls == []
    assert_no_connection(listener)


# --------------------------------------------------------------------------- TLS on the hostname


@dataclass
class _Pki:
    ca_file: Path
    server_context: ssl.SSLContext


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _make_pki(directory: Path, hostname: str) -> _Pki:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("netguard test CA"))
        .issuer_name(_name("netguard test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hostname))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file = directory / "server.pem"
    cert_file.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file)
    return _Pki(ca_file=ca_file, server_context=server_context)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[_RecordingServer]:
    pki = _make_pki(tmp_path, "hooks.example.test")
    server = _RecordingServer()

    def record_sni(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        server.sni.append(name)

    pki.server_context.sni_callback = record_sni
    server.socket = pki.server_context.wrap_socket(server.socket, server_side=True)
    server.ca_file = pki.ca_file
    with serving(server) as served:
        yield served


def _tls_client(
    server: _RecordingServer, backend: RecordingBackend, dns: dict[str, list[str]]
) -> httpx.AsyncClient:
    transport = GuardedTransport(
        allow_http=False,
        allow_private=True,
        resolver=FakeResolver(dns),
        network_backend=backend,
        ssl_context=ssl.create_default_context(cafile=server.ca_file),
    )
    return httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False)


def test_tls_sni_and_certificate_use_the_original_hostname(tls_server: _RecordingServer) -> None:
    backend = RecordingBackend()

    async def attempt() -> httpx.Response:
        dns = {"hooks.example.test": ["127.0.0.1"]}
        async with _tls_client(tls_server, backend, dns) as client:
            return await client.get(f"https://hooks.example.test:{tls_server.port}/secure")

    assert run(attempt()).status_code == 200
    assert tls_server.sni == ["hooks.example.test"]
    assert tls_server.seen == [SeenRequest(f"hooks.example.test:{tls_server.port}", "/secure")]
    assert backend.calls == [("127.0.0.1", tls_server.port)]


def test_tls_certificate_is_checked_against_the_requested_hostname(
    tls_server: _RecordingServer,
) -> None:
    backend = RecordingBackend()

    async def attempt() -> None:
        async with _tls_client(tls_server, backend, {"other.example.test": ["127.0.0.1"]}) as c:
            await c.get(f"https://other.example.test:{tls_server.port}/")

    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        run(attempt())
    assert tls_server.seen == []


# --------------------------------------------------------------------------- read_capped


def test_read_capped_stops_at_the_limit(http_server: _RecordingServer) -> None:
    async def attempt() -> bytes:
        async with (
            build_async_client(allow_http=True, allow_private=True, resolver=no_dns) as client,
            client.stream("GET", f"http://127.0.0.1:{http_server.port}/endless") as response,
        ):
            return await asyncio.wait_for(read_capped(response, limit=1000), timeout=10)

    started = time.monotonic()
    body = run(attempt())
    assert body == b"x" * 1000
    assert time.monotonic() - started < 10


def test_read_capped_short_and_already_read_bodies(http_server: _RecordingServer) -> None:
    url = f"http://127.0.0.1:{http_server.port}/small"

    async def attempt() -> tuple[bytes, bytes, bytes]:
        async with build_async_client(
            allow_http=True, allow_private=True, resolver=no_dns
        ) as client:
            async with client.stream("GET", url) as response:
                streamed = await read_capped(response)
            async with client.stream("GET", url) as response:
                nothing = await read_capped(response, limit=0)
            already_read = await read_capped(await client.get(url), limit=1)
            return streamed, nothing, already_read

    assert run(attempt()) == (b"ok", b"", b"o")


def test_client_defaults() -> None:
    client = build_async_client(allow_http=False, allow_private=False, resolver=no_dns)
    try:
        assert client.follow_redirects is False
        assert client.trust_env is False
        assert client.timeout == httpx.Timeout(15.0, connect=5.0)
        assert client.headers["Accept-Encoding"] == "identity"
    finally:
        run(client.aclose())
