"""Listening ports checked before anything starts, so a busy one is one clear line, not a
server that dies after the banner."""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOOPBACK = "127.0.0.1"


def port_is_free(port: int, host: str = LOOPBACK, reuse_address: bool = True) -> bool:
    """True if a server could listen on host:port now.

    Binds with SO_REUSEADDR, as uvicorn does: connections of a stopped server lingering in
    TIME_WAIT do not count, a socket still listening there (on this address or a wildcard) does.
    With `reuse_address=False` lingering connections count too (free_port's stricter pick).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror:
        return True  # not an address we can check; the server reports it when it binds
    with socket.socket(family, kind, proto) as sock:
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError:
            return False
    return True


# Where free_port looks: at or above FIRST_PICKED_PORT and below the kernel's ephemeral range.
FIRST_PICKED_PORT = 10_000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
DEFAULT_EPHEMERAL_START = 32_768  # Linux's default; macOS and Windows start theirs higher
PICK_ATTEMPTS = 50


def ephemeral_start() -> int:
    """The first port the kernel hands to outgoing connections."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_EPHEMERAL_START


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on right now, for a server that binds it a moment later.

    Picked below the ephemeral range: the kernel gives ports of that range to outgoing
    connections, so one picked there (as bind to port 0 does) can be taken by any client's
    connection on the machine before the server binds it, as can happen in busy test runs."""
    last = ephemeral_start() - 1
    if last > FIRST_PICKED_PORT:
        for _ in range(PICK_ATTEMPTS):
            port = random.randint(FIRST_PICKED_PORT, last)
            if port_is_free(port, host, reuse_address=False):
                return port
    return _kernel_pick(host)


def _kernel_pick(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def busy_port_message(port: int, how_to_change: str) -> str:
    return f"port {port} is in use (choose another with {how_to_change})"
