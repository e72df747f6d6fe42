"""The cluster run's own logic without namespaces (part of `make test`; no services): the
URL check that keeps its traffic on its hosts, the choice of a free subnet, the load's
routing between the two intakes."""

from __future__ import annotations

import ipaddress

import pytest

from tests.chaos.load import Target
from tests.cluster import guard
from tests.cluster import network as network_module
from tests.cluster.errors import ClusterError
from tests.cluster.load import ClusterLoad
from tests.cluster.network import CANDIDATE_SUBNETS, free_subnet, networks_in_use

pytestmark = pytest.mark.unit

HOSTS = {"10.213.0.2": "db", "10.213.0.3": "a"}
NAMES = {"db.cluster": ["10.213.0.2"], "both.cluster": ["10.213.0.2", "127.0.0.1"]}


def resolver(host: str) -> list[str]:
    return NAMES.get(host, [host] if host[0].isdigit() else [])


def test_urls_on_the_runs_hosts_pass_and_are_all_returned() -> None:
    settings = {
        "LEADLINE_DATABASE_URL": "postgresql://postgres@10.213.0.2:5432/postgres",
        "LEADLINE_REDIS_URL": "redis://db.cluster:6379/0",
        "LEADLINE_PUBLIC_URL": "http://10.213.0.3:8000",
        "LEADLINE_BACKUP_URL": "s3://bucket/backups",
        "LEADLINE_S3_ENDPOINT_URL": "http://10.213.0.2:9000",
        "LEADLINE_LOG_LEVEL": "WARNING",
    }
    checked = guard.require_inside([settings], HOSTS, resolver)
    assert sorted(checked) == [
        "LEADLINE_DATABASE_URL", "LEADLINE_PUBLIC_URL", "LEADLINE_REDIS_URL",
        "LEADLINE_S3_ENDPOINT_URL",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("postgresql://postgres@127.0.0.1:5432/postgres", "127.0.0.1, not a host of this run"),
        ("redis://localhost:6379/0", "'localhost' does not resolve"),
        ("http://192.0.2.2:8000", "192.0.2.2, not a host of this run"),
        ("http://both.cluster:8000", "127.0.0.1, not a host of this run"),
        ("http://10.213.0.9:8000", "10.213.0.9, not a host of this run"),
    ],
)
def test_a_url_leading_anywhere_else_stops_the_run(value: str, says: str) -> None:
    with pytest.raises(ClusterError, match="traffic would leave") as raised:
        guard.require_inside([{"SOME_URL": value}], HOSTS, resolver)
    assert says in str(raised.value)


def test_a_bucket_without_an_endpoint_would_go_to_aws_and_is_refused() -> None:
    with pytest.raises(ClusterError, match="a bucket without LEADLINE_S3_ENDPOINT_URL"):
        guard.require_inside(
            [{"LEADLINE_BACKUP_URL": "s3://bucket/x", "DB": "postgresql://10.213.0.2/x"}],
            HOSTS,
            resolver,
        )


def test_nothing_to_check_is_an_error_not_a_pass() -> None:
    with pytest.raises(ClusterError, match="no URL to check"):
        guard.require_inside([{"LEADLINE_LOG_LEVEL": "INFO"}], HOSTS, resolver)


def test_the_subnet_avoids_every_route_and_address_of_the_machine() -> None:
    routes = [{"dst": "default"}, {"dst": "10.213.0.0/24"}, {"dst": "fd00::/64"}]
    used = networks_in_use(routes, ["192.0.2.2/24", "10.213.10.7/24"])
    subnet = free_subnet(used)
    assert not any(subnet.overlaps(network) for network in used)
    assert subnet == CANDIDATE_SUBNETS[2]


def test_no_free_subnet_is_an_error() -> None:
    with pytest.raises(ClusterError, match="overlaps a route"):
        free_subnet([ipaddress.IPv4Network("10.0.0.0/8")])


def target(url: str) -> Target:
    return Target(url, url, "token", "AC1", "whsec_1", [])


def test_lanes_split_between_the_hosts_and_fall_back_to_the_other() -> None:
    load = ClusterLoad([], {"a": target("http://a"), "b": target("http://b")}, 1.0, 1.0)
    assert [host for host, _ in load.route(0)] == ["a", "b"]
    assert [host for host, _ in load.route(1)] == ["b", "a"]


def test_a_namespace_that_cannot_be_made_stops_the_run_and_what_was_made_is_removed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, ...]] = []

    def fake_ip(*args: str) -> str:
        calls.append(args)
        if args[:2] == ("netns", "add") and args[2].endswith("-b"):
            raise ClusterError("`ip netns add` failed: Permission denied")
        return "[]" if args[0] == "-j" else ""

    monkeypatch.setattr(network_module, "ip", fake_ip)
    net = network_module.Network(("db", "a", "b"), tag="lltest")
    with pytest.raises(ClusterError, match="Permission denied"):
        net.create()
    made = [call for call in calls if call[:2] in (("netns", "add"), ("link", "add"))]
    assert [call[2] for call in made] == [
        "lltestbr",
        "lltest-db",
        "lltestdb",
        "lltest-a",
        "lltesta",
        "lltest-b",
    ]
    calls.clear()
    assert net.destroy() == []
    removed = [call[2] for call in calls if call[1] == "del"]
    assert removed == ["lltest-db", "lltest-a", "lltestbr"]  # b's namespace was never made
    # (the veths are gone from /sys/class/net here, so only the namespaces and the bridge)
