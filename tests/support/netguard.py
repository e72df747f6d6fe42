"""Network instrumentation for SSRF tests: a socket factory that records every connect and dials
only loopback (failing the test for anything else), a fake DNS resolver, and a listener check."""

from __future__ import annotations

import ipaddress
import select
import socket
from dataclasses import dataclass, field

from aiohappyeyeballs import AddrInfoType

from leadline.netguard import plain_socket

PUBLIC_IP = "93.184.215.14"  # only ever returned by fake resolvers; never dialled


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def admit_loopback(calls: list[tuple[str, int]], host: str, port: int) -> None:
    """Note the connect in `calls`; fail the test unless it goes to loopback."""
    calls.append((host, port))
    if not is_loopback(host):
        raise AssertionError("test attempted a non-loopback connection")


class RecordingSockets:
    """A GuardedClient's socket factory: records every dial the guard let through; makes the
    socket only for loopback, and fails the test for anything else."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, addr_info: AddrInfoType) -> socket.socket:
        admit_loopback(self.calls, str(addr_info[4][0]), int(addr_info[4][1]))
        return plain_socket(addr_info)


@dataclass
class FakeResolver:
    table: dict[str, list[str]] = field(default_factory=dict)
    calls: list[tuple[str, int]] = field(default_factory=list)

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "unknown test host")
        return list(self.table[host])


def assert_no_connection(sock: socket.socket) -> None:
    readable, _, _ = select.select([sock], [], [], 0.3)
    assert readable == [], "the listener received a connection"
