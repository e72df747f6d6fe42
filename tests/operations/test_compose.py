"""compose.yaml, the Dockerfile and .env.example agree with each other and with the settings:
every setting is in .env.example, every value compose requires is there, only the TLS proxy
publishes ports (so intake and worker scale), every service has a health check, and the image
gives its user the directories it writes. (`docker compose config` itself runs in CI,
.ci/compose-config.)"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from leadline.settings import Settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
ENV_LINE = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


def env_example() -> list[str]:
    return (ROOT / ".env.example").read_text().splitlines()


def listed(lines: list[str]) -> dict[str, tuple[bool, int]]:
    """NAME -> (active, line index) for every `NAME=` or `# NAME=` line."""
    found: dict[str, tuple[bool, int]] = {}
    for index, line in enumerate(lines):
        match = ENV_LINE.match(line)
        if match:
            found.setdefault(match.group(2), (match.group(1) is None, index))
    return found


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return document


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def comment_above(lines: list[str], index: int) -> str:
    """The comment over a setting, or over the group of settings it belongs to."""
    while index > 0 and ENV_LINE.match(lines[index - 1]):
        index -= 1
    return lines[index - 1] if index > 0 else ""


def test_every_setting_is_in_env_example_with_a_comment() -> None:
    lines = env_example()
    names = listed(lines)
    for field in Settings.model_fields:
        name = field.upper()
        assert name in names, f"{name} is a setting but is not in .env.example"
        comment = comment_above(lines, names[name][1])
        assert comment.startswith("# ") and len(comment) > 10, f"{name}: no comment above it"


def test_env_example_names_no_setting_that_does_not_exist() -> None:
    fields = {field.upper() for field in Settings.model_fields}
    stale = {name for name in listed(env_example()) if name.startswith("LEADLINE_")} - fields
    assert stale == {"LEADLINE_DOMAIN"}  # compose's, not a setting: the proxy's host name


def test_every_value_compose_requires_is_an_active_line_of_env_example() -> None:
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", (ROOT / "compose.yaml").read_text()))
    names = listed(env_example())
    assert required == {
        "POSTGRES_PASSWORD",
        "POSTGRES_APP_PASSWORD",
        "REDIS_PASSWORD",
        "LEADLINE_DOMAIN",
    }
    assert all(names[name][0] for name in required)


def test_only_the_proxy_publishes_ports_so_intake_and_worker_scale() -> None:
    published = {name for name, service in services().items() if service.get("ports")}
    assert published == {"proxy"}
    for name in ("intake", "worker"):
        assert "container_name" not in services()[name]


def test_the_proxy_is_the_one_trusted_hop_and_no_replica_can_take_its_address() -> None:
    proxy_address = services()["proxy"]["networks"]["edge"]["ipv4_address"]
    trusted = compose()["x-leadline-env"]["LEADLINE_TRUSTED_PROXIES"]
    assert ipaddress.ip_address(proxy_address) in ipaddress.ip_network(trusted)
    assert ipaddress.ip_network(trusted).num_addresses == 1
    (pool,) = compose()["networks"]["edge"]["ipam"]["config"]
    assert ipaddress.ip_address(proxy_address) in ipaddress.ip_network(pool["subnet"])
    assert ipaddress.ip_address(proxy_address) not in ipaddress.ip_network(pool["ip_range"])
    assert "edge" in services()["intake"]["networks"]
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    assert "name intake" in caddyfile and "port 8000" in caddyfile  # every replica
    assert services()["intake"]["command"][-1] == "8000"


def test_every_long_running_service_has_a_health_check_on_its_probe() -> None:
    checks = {name: s.get("healthcheck", {}).get("test") for name, s in services().items()}
    assert set(services()) - {name for name, test in checks.items() if test} == {"migrate"}
    probes = {
        "intake": "http://127.0.0.1:8000/healthz",
        "worker": "http://127.0.0.1:${LEADLINE_WORKER_METRICS_PORT:-9191}/healthz",
        "scheduler": "http://127.0.0.1:${LEADLINE_SCHEDULER_METRICS_PORT:-9190}/healthz",
    }
    for name, url in probes.items():
        command, program, flag, code = checks[name]
        assert (command, program, flag) == ("CMD", "python", "-c")  # the image has no curl
        assert f"urlopen('{url}', timeout=3)" in code
        compile(code, f"{name} healthcheck", "exec")
    assert services()["migrate"]["restart"] == "no"  # one-shot: its exit code is its health


def test_redis_requires_the_password_that_the_url_carries() -> None:
    redis = services()["redis"]
    assert "--requirepass" in redis["command"][-1]
    assert redis["environment"]["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?")
    assert "grep -q PONG" in redis["healthcheck"]["test"][-1]
    url = compose()["x-leadline-env"]["LEADLINE_REDIS_URL"]
    assert url == "redis://:${REDIS_PASSWORD}@redis:6379/0"


def test_the_image_gives_its_user_the_directories_it_writes() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--uid 10001" in dockerfile and "\nUSER leadline\n" in dockerfile
    assert re.search(
        r"install -d -o leadline -g leadline -m 0700 /backups /var/lib/leadline", dockerfile
    )
    assert "LEADLINE_STATE_DIR=/var/lib/leadline" in dockerfile
    assert "LEADLINE_BACKUP_URL=file:///backups" in dockerfile
    volumes = compose()["x-leadline"]["volumes"]
    assert volumes == ["backups:/backups"]
    assert (
        compose()["x-leadline-env"]["LEADLINE_BACKUP_URL"]
        == "${LEADLINE_BACKUP_URL:-file:///backups}"
    )
