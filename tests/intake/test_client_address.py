"""The client address: X-Forwarded-For hops believed only as far as trusted proxies go."""

from __future__ import annotations

import ipaddress

import pytest

from intake.limits import address_bucket
from intake.middleware import resolve_client

pytestmark = pytest.mark.unit

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


@pytest.mark.parametrize(
    ("peer", "hops", "trusted", "client"),
    [
        # No trusted proxies: the peer, whatever the header says.
        ("192.0.2.1", ["198.51.100.7"], (), "192.0.2.1"),
        # An untrusted peer's header is ignored even when proxies are configured.
        ("192.0.2.1", ["198.51.100.7"], PROXIES, "192.0.2.1"),
        # Behind one trusted proxy: the hop it appended.
        ("10.0.0.2", ["198.51.100.7"], PROXIES, "198.51.100.7"),
        # A spoofed leftmost hop is skipped: the rightmost untrusted one is the client.
        ("10.0.0.2", ["203.0.113.9", "198.51.100.7"], PROXIES, "198.51.100.7"),
        # Two trusted proxies in a row.
        ("10.0.0.2", ["203.0.113.9", "198.51.100.7", "10.1.1.1"], PROXIES, "198.51.100.7"),
        # Every hop trusted (an internal caller): the leftmost.
        ("10.0.0.2", ["10.9.9.9"], PROXIES, "10.9.9.9"),
        # Ports and brackets are not part of the address; IPv4-mapped IPv6 is IPv4.
        ("10.0.0.2", ["198.51.100.7:4711"], PROXIES, "198.51.100.7"),
        ("fd00::1", ["[2001:db8::5]:443"], PROXIES, "2001:db8::5"),
        ("::ffff:10.0.0.2", ["198.51.100.7"], PROXIES, "198.51.100.7"),
        # Garbage appended by a trusted proxy names nobody: the proxy is the client.
        ("10.0.0.2", ["198.51.100.7", "not-an-address"], PROXIES, "10.0.0.2"),
        ("10.0.0.2", [""], PROXIES, "10.0.0.2"),
    ],
)
def test_resolve_client(
    peer: str,
    hops: list[str],
    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
    client: str,
) -> None:
    assert resolve_client(peer, hops, trusted) == client


def test_failures_count_an_ipv6_client_by_its_64() -> None:
    assert address_bucket("2001:db8:1:2:aaaa::1") == address_bucket("2001:db8:1:2:bbbb::9")
    assert address_bucket("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert address_bucket("2001:db8:1:3::1") != address_bucket("2001:db8:1:2::1")
    assert address_bucket("198.51.100.7") == "198.51.100.7"
    assert address_bucket("testclient") == "testclient"
