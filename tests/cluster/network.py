"""The run's hosts: network namespaces on one bridge, their addresses, and getting inside one.

A bridge in the root namespace holds the subnet's first address (the load generator sends
from there, an operator's shell as it were); each host is a namespace with one veth pair
to the bridge and one address. The subnet is the first candidate /24 that no route and no
address of the root namespace touches. Names carry the runner's pid, so two runs (or a
leftover of a crashed one) never share a namespace or an interface.

A thread moves into a namespace with setns(2), which changes the calling thread only:
sockets it opens and processes it starts live there, the rest of the runner stays put.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tests.cluster.errors import ClusterError

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")
CANDIDATE_SUBNETS = tuple(ipaddress.IPv4Network(f"10.213.{n}.0/24") for n in range(0, 250, 10))
IP_TIMEOUT_SECONDS = 20.0


def ip(*args: str) -> str:
    """`ip ARGS`; its stdout. A failure is a ClusterError naming the command."""
    try:
        result = subprocess.run(
            ["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ClusterError(f"`ip {' '.join(args)}` could not run: {exc}") from None
    if result.returncode != 0:
        raise ClusterError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()[:300]}")
    return result.stdout


def networks_in_use(
    routes: Iterable[dict[str, str]], addresses: Iterable[str]
) -> list[ipaddress.IPv4Network]:
    """Every IPv4 destination of the root namespace's routes (`default` is not a subnet we
    could take: only its gateway's network is, and it has an address or a route of its own)
    and the network of each of its addresses."""
    used = []
    for route in routes:
        destination = route.get("dst", "")
        if destination and destination != "default" and ":" not in destination:
            used.append(ipaddress.IPv4Network(destination, strict=False))
    used += [ipaddress.IPv4Interface(address).network for address in addresses]
    return used


def free_subnet(used: Sequence[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    for subnet in CANDIDATE_SUBNETS:
        if not any(subnet.overlaps(other) for other in used):
            return subnet
    raise ClusterError("every candidate subnet 10.213.x.0/24 overlaps a route of this machine")


def root_addresses() -> list[str]:
    entries = json.loads(ip("-j", "-4", "addr", "show") or "[]")
    return [
        f"{info['local']}/{info['prefixlen']}"
        for entry in entries
        for info in entry.get("addr_info", [])
    ]


def root_routes() -> list[dict[str, str]]:
    return list(json.loads(ip("-j", "-4", "route", "show", "table", "all") or "[]"))


@dataclass(frozen=True)
class Host:
    name: str  # the run's name for it: db, a, b, ext
    namespace: str
    address: str
    veth: str  # the root namespace's end of its veth pair

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside this host."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def pids(self) -> list[int]:
        """Every process in this host's namespace, whoever started it."""
        return [int(pid) for pid in ip("netns", "pids", self.namespace).split()]


@dataclass
class Network:
    """The bridge and the hosts of one run; `create` makes them, `destroy` removes them."""

    names: Sequence[str]
    tag: str = field(default_factory=lambda: f"ll{os.getpid() % 100_000}")
    subnet: ipaddress.IPv4Network | None = None
    hosts: dict[str, Host] = field(default_factory=dict)
    bridge_made: bool = False

    @property
    def bridge(self) -> str:
        return f"{self.tag}br"

    @property
    def gateway(self) -> str:
        """The bridge's address in the root namespace."""
        assert self.subnet is not None
        return str(self.subnet.network_address + 1)

    def host(self, name: str) -> Host:
        return self.hosts[name]

    def create(self) -> None:
        self.subnet = free_subnet(networks_in_use(root_routes(), root_addresses()))
        ip("link", "add", self.bridge, "type", "bridge")
        self.bridge_made = True
        ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for number, name in enumerate(self.names, start=2):
            self.hosts[name] = self._make_host(name, str(self.subnet.network_address + number))

    def _make_host(self, name: str, address: str) -> Host:
        assert self.subnet is not None
        host = Host(name, f"{self.tag}-{name}", address, f"{self.tag}{name}")
        ip("netns", "add", host.namespace)
        self.hosts[name] = host  # from here on, destroy() removes it
        peer = ("peer", "name", "eth0", "netns", host.namespace)
        ip("link", "add", host.veth, "type", "veth", *peer)
        ip("link", "set", host.veth, "master", self.bridge, "up")
        inside = ("-n", host.namespace)
        ip(*inside, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
        ip(*inside, "link", "set", "eth0", "up")
        ip(*inside, "link", "set", "lo", "up")
        return host

    def addresses(self) -> dict[str, str]:
        """Address → host name, for every host this run made."""
        return {host.address: name for name, host in self.hosts.items()}

    def destroy(self) -> list[str]:
        """Namespaces (their veth ends go with them), leftover veths, the bridge. Returns what
        could not be removed; never raises."""
        problems = []
        for host in list(self.hosts.values()):
            # The veth first (both ends go with it), then the namespace.
            if Path(f"/sys/class/net/{host.veth}").exists():
                problems += attempt("link", "del", host.veth, gone="Cannot find device")
            problems += attempt("netns", "del", host.namespace, gone="No such file")
        self.hosts.clear()
        if self.bridge_made:
            problems += attempt("link", "del", self.bridge, gone="Cannot find device")
            self.bridge_made = False
        return problems


def attempt(*args: str, gone: str) -> list[str]:
    """`ip ARGS` during cleanup: its failure as a line, none if the thing was already gone."""
    try:
        ip(*args)
    except ClusterError as exc:
        return [] if gone in str(exc) else [str(exc)]
    return []


def enter(namespace: str) -> None:
    """Move the calling thread into `namespace` (its network only)."""
    libc = ctypes.CDLL(None, use_errno=True)
    descriptor = os.open(NETNS_DIR / namespace, os.O_RDONLY)
    try:
        if libc.setns(descriptor, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise ClusterError(f"cannot enter namespace {namespace}: {os.strerror(error)}")
    finally:
        os.close(descriptor)


def inside(namespace: str, work: Callable[[], T]) -> T:
    """`work()` in a thread of its own inside `namespace`: what it binds, connects or starts
    lives there. Its result, or its exception, comes back to the caller."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            enter(namespace)
            outcome.append(work())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"in-{namespace}", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]
