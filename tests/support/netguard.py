"""Network instrumentation for SSRF tests: backends that record every connect and dial only
loopback (failing the test for anything else), a fake DNS resolver, and a listener check."""

from __future__ import annotations

import ipaddress
import select
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpcore

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


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Records every connect; dials only loopback, and fails the test for anything else."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        admit_loopback(self.calls, host, port)
        return await self._inner.connect_tcp(host, port, timeout=timeout)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class RecordingSyncBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        admit_loopback(self.calls, host, port)
        return self._inner.connect_tcp(host, port, timeout=timeout)


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
