"""Listening ports checked before anything starts, so a busy one is one clear line, not a
server that dies after the banner."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True if a server could listen on host:port now.

    Binds with SO_REUSEADDR, as uvicorn does: connections of a stopped server lingering in
    TIME_WAIT do not count, a socket still listening there (on this address or a wildcard) does.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror:
        return True  # not an address we can check; the server reports it when it binds
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError:
            return False
    return True


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def busy_port_message(port: int, how_to_change: str) -> str:
    return f"port {port} is in use (choose another with {how_to_change})"
