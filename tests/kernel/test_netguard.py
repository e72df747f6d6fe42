"""Tests for the SSRF guard.

Safety rule for this file: nothing here may open a connection outside 127.0.0.0/8 or ::1.
Every client is built with a recording socket factory that refuses to dial anything that is
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

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given
from hypothesis import strategies as st

from leadline import netguard
from leadline.netguard import (
    GuardedClient,
    GuardedResponse,
    GuardPolicy,
    Resolver,
    UnsafeTargetError,
    UrlTarget,
    is_global_address,
    parse_target,
    resolve_vetted,
    validate_webhook_url,
    vet_address,
)
from tests.support.http import QuietHandler, serving
from tests.support.netguard import (
    PUBLIC_IP,
    FakeResolver,
    RecordingSockets,
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
        self.server.encodings.append(self.headers.get("Accept-Encoding"))
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
        self.encodings: list[str | None] = []
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
        ("https://:443/path", False, "not valid"),
        ("https://example.com:99999/", False, "not valid"),
        ("https://example.com:0/", False, "port"),
        ("https://1.2.3.4.5/", False, "malformed numeric"),
        ("https://0x/", False, "malformed numeric"),
        ("https://%31%32%37.0.0.1/", False, "characters"),
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


# --------------------------------------------------------------------------- client: refusals

# (url template, fake DNS table); {port} is the 127.0.0.1 listener's port.
REFUSED_TARGETS: list[tuple[str, dict[str, list[str]]]] = [
    ("http://127.0.0.1:{port}/", {}),
    ("http://localhost:{port}/", {"localhost": ["127.0.0.1", "::1"]}),
    ("http://[::1]:{port}/", {}),
    ("http://[::ffff:127.0.0.1]:{port}/", {}),
    ("http://2130706433:{port}/", {}),
    ("http://0x7f.1:{port}/", {}),
    ("http://0177.0.0.1:{port}/", {}),
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


def guarded(
    resolver: Resolver = no_dns,
    sockets: RecordingSockets | None = None,
    *,
    allow_http: bool = True,
    allow_private: bool = False,
    ssl_context: ssl.SSLContext | None = None,
) -> GuardedClient:
    """Call on the event loop that uses it; every dial goes through `sockets`."""
    return GuardedClient(
        GuardPolicy(allow_http, allow_private, resolver),
        socket_factory=sockets if sockets is not None else RecordingSockets(),
        ssl_context=ssl_context,
    )


@pytest.mark.parametrize(("template", "dns"), REFUSED_TARGETS)
def test_guarded_client_refuses_before_connecting(
    template: str, dns: dict[str, list[str]], listener: socket.socket
) -> None:
    url = template.format(port=listener.getsockname()[1]) + "?token=s3cret"
    sockets = RecordingSockets()
    resolver = FakeResolver(dns) if dns else no_dns

    async def attempt() -> None:
        async with guarded(resolver, sockets) as client:
            await client.post(url, b"{}")

    with pytest.raises(UnsafeTargetError) as info:
        run(attempt())
    assert "s3cret" not in str(info.value)
    assert sockets.calls == []
    assert_no_connection(listener)


def test_ipv6_loopback_listener_sees_nothing(listener_v6: socket.socket | None) -> None:
    if listener_v6 is None:
        pytest.skip("no IPv6 loopback in this environment")
    sockets = RecordingSockets()
    url = f"http://[::1]:{listener_v6.getsockname()[1]}/"

    async def attempt() -> None:
        async with guarded(no_dns, sockets) as client:
            await client.request("GET", url)

    with pytest.raises(UnsafeTargetError, match="loopback"):
        run(attempt())
    assert sockets.calls == []
    assert_no_connection(listener_v6)


def test_https_only_client_refuses_plain_http() -> None:
    sockets = RecordingSockets()

    async def attempt() -> None:
        async with guarded(no_dns, sockets, allow_http=False, allow_private=True) as client:
            await client.request("GET", "http://127.0.0.1:1/")

    with pytest.raises(UnsafeTargetError, match="plain http"):
        run(attempt())
    assert sockets.calls == []


def test_dns_failure_is_a_transient_connect_error() -> None:
    sockets = RecordingSockets()

    async def attempt() -> None:
        async with guarded(FakeResolver(), sockets) as client:
            await client.request("GET", "http://missing.example.test/")

    with pytest.raises(aiohttp.ClientConnectorDNSError):
        run(attempt())
    assert sockets.calls == []


@pytest.mark.parametrize("address", ["10.0.0.1", "127.0.0.1", "169.254.169.254", "::1"])
def test_connect_step_refuses_an_address_the_policy_does_not_allow(address: str) -> None:
    """Whatever found the address (a resolver bug, a literal the checks missed), the dial is
    refused before a socket exists."""
    sockets = RecordingSockets()
    connect = netguard._vetting_sockets(GuardPolicy(True, False), sockets)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with pytest.raises(UnsafeTargetError, match=r"not global|not allowed"):
        connect((family, socket.SOCK_STREAM, 6, "", (address, 80)))
    assert sockets.calls == []


# --------------------------------------------------------------------------- client: redirects


def test_redirect_to_private_address_is_returned_not_followed(
    http_server: _RecordingServer,
) -> None:
    sockets = RecordingSockets()

    async def attempt() -> GuardedResponse:
        async with guarded(no_dns, sockets, allow_private=True) as client:
            return await client.request(
                "GET", f"http://127.0.0.1:{http_server.port}/redirect-private"
            )

    response = run(attempt())
    assert response.status == 302
    assert response.headers["Location"] == "http://10.0.0.1/"
    assert sockets.calls == [("127.0.0.1", http_server.port)]
    assert [seen.path for seen in http_server.seen] == ["/redirect-private"]


# --------------------------------------------------------------------------- client: success


def test_request_to_local_receiver_in_development(http_server: _RecordingServer) -> None:
    sockets = RecordingSockets()

    async def attempt() -> GuardedResponse:
        async with guarded(no_dns, sockets, allow_private=True) as client:
            return await client.post(f"http://127.0.0.1:{http_server.port}/hook", b"{}")

    response = run(attempt())
    assert response.status == 200
    assert response.is_success
    assert response.body == b"ok"
    assert http_server.seen == [SeenRequest(f"127.0.0.1:{http_server.port}", "/hook")]
    assert sockets.calls == [("127.0.0.1", http_server.port)]


def test_connects_to_vetted_ip_but_keeps_host_header(http_server: _RecordingServer) -> None:
    sockets = RecordingSockets()
    resolver = FakeResolver({"hooks.example.test": ["127.0.0.1"]})
    url = f"http://hooks.example.test:{http_server.port}/hook?id=1"

    async def attempt() -> GuardedResponse:
        async with guarded(resolver, sockets, allow_private=True) as client:
            return await client.post(url, b"{}")

    assert run(attempt()).status == 200
    assert http_server.seen == [SeenRequest(f"hooks.example.test:{http_server.port}", "/hook?id=1")]
    assert sockets.calls == [("127.0.0.1", http_server.port)]
    assert resolver.calls == [("hooks.example.test", http_server.port)]


def test_a_kept_alive_connection_is_reused_without_resolving_again(
    http_server: _RecordingServer,
) -> None:
    sockets = RecordingSockets()
    resolver = FakeResolver({"hooks.example.test": ["127.0.0.1"]})
    url = f"http://hooks.example.test:{http_server.port}/"

    async def attempt() -> None:
        async with guarded(resolver, sockets, allow_private=True) as client:
            await client.request("GET", url)
            await client.request("GET", url)

    run(attempt())
    assert len(http_server.seen) == 2
    assert resolver.calls == [("hooks.example.test", http_server.port)]
    assert sockets.calls == [("127.0.0.1", http_server.port)]


def test_falls_back_to_next_vetted_address(http_server: _RecordingServer) -> None:
    # Nothing listens on 127.0.0.2 (the server binds 127.0.0.1 only), so that dial is refused.
    sockets = RecordingSockets()
    resolver = FakeResolver({"hooks.example.test": ["127.0.0.2", "127.0.0.1"]})

    async def attempt() -> GuardedResponse:
        async with guarded(resolver, sockets, allow_private=True) as client:
            return await client.request("GET", f"http://hooks.example.test:{http_server.port}/")

    assert run(attempt()).status == 200
    assert sockets.calls == [("127.0.0.2", http_server.port), ("127.0.0.1", http_server.port)]


def test_no_proxy_from_the_environment_and_no_compression(
    http_server: _RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://10.9.9.9:3128")
    monkeypatch.setenv("ALL_PROXY", "http://10.9.9.9:3128")
    sockets = RecordingSockets()

    async def attempt() -> GuardedResponse:
        async with guarded(no_dns, sockets, allow_private=True) as client:
            return await client.request("GET", f"http://127.0.0.1:{http_server.port}/small")

    assert run(attempt()).body == b"ok"
    assert sockets.calls == [("127.0.0.1", http_server.port)]
    assert http_server.encodings == ["identity"]


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


def test_tls_sni_and_certificate_use_the_original_hostname(tls_server: _RecordingServer) -> None:
    sockets = RecordingSockets()
    url = f"https://hooks.example.test:{tls_server.port}/secure"

    async def attempt() -> GuardedResponse:
        resolver = FakeResolver({"hooks.example.test": ["127.0.0.1"]})
        context = ssl.create_default_context(cafile=tls_server.ca_file)
        async with guarded(
            resolver, sockets, allow_http=False, allow_private=True, ssl_context=context
        ) as client:
            return await client.request("GET", url)

    assert run(attempt()).status == 200
    assert tls_server.sni == ["hooks.example.test"]
    assert tls_server.seen == [SeenRequest(f"hooks.example.test:{tls_server.port}", "/secure")]
    assert sockets.calls == [("127.0.0.1", tls_server.port)]


def test_tls_certificate_is_checked_against_the_requested_hostname(
    tls_server: _RecordingServer,
) -> None:
    url = f"https://other.example.test:{tls_server.port}/"

    async def attempt() -> None:
        resolver = FakeResolver({"other.example.test": ["127.0.0.1"]})
        context = ssl.create_default_context(cafile=tls_server.ca_file)
        async with guarded(
            resolver, allow_http=False, allow_private=True, ssl_context=context
        ) as client:
            await client.request("GET", url)

    with pytest.raises(aiohttp.ClientConnectorCertificateError, match="CERTIFICATE_VERIFY_FAILED"):
        run(attempt())
    assert tls_server.seen == []


# --------------------------------------------------------------------------- read limit


def test_read_limit_stops_an_endless_body(http_server: _RecordingServer) -> None:
    async def attempt() -> GuardedResponse:
        async with guarded(no_dns, allow_private=True) as client:
            url = f"http://127.0.0.1:{http_server.port}/endless"
            return await asyncio.wait_for(client.request("GET", url, read_limit=1000), 10)

    started = time.monotonic()
    assert run(attempt()).body == b"x" * 1000
    assert time.monotonic() - started < 10


def test_read_limit_on_short_bodies(http_server: _RecordingServer) -> None:
    url = f"http://127.0.0.1:{http_server.port}/small"

    async def attempt() -> tuple[bytes, bytes, bytes]:
        async with guarded(no_dns, allow_private=True) as client:
            whole = await client.request("GET", url)
            nothing = await client.request("GET", url, read_limit=0)
            one = await client.request("GET", url, read_limit=1)
            return whole.body, nothing.body, one.body

    assert run(attempt()) == (b"ok", b"", b"o")
