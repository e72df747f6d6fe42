"""The CLI as an operator runs it: real processes against the test database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from starlette.testclient import TestClient

from leadline.ports import free_port
from leadline.settings import Settings
from tests.support.processes import child_env
from tests.support.services import MakeOrg

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.e2e


def leadline(settings: Settings, *args: str, **env: str) -> Any:
    result = subprocess.run(
        [sys.executable, "-m", "leadline", *args, "--json"],
        env=child_env(settings, providers=False, LEADLINE_ENV="development", **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_org_and_api_key_lifecycle(
    settings: Settings, client: TestClient, context: TaskContext
) -> None:
    org = leadline(settings, "org", "create", "Acme Roofing")
    key = leadline(settings, "apikey", "create", org["id"])
    assert key["key"].startswith(key["prefix"] + "_")
    accepted = client.post(
        "/v1/leads",
        json={"phone": "+14155550190"},
        headers={"Authorization": f"Bearer {key['key']}"},
    )
    assert accepted.status_code == 202
    assert leadline(settings, "apikey", "revoke", key["prefix"])["revoked"] is True
    refused = client.post(
        "/v1/leads",
        json={"phone": "+14155550190"},
        headers={"Authorization": f"Bearer {key['key']}"},
    )
    assert refused.status_code == 401


def test_cli_errors_are_one_line_and_exit_nonzero(settings: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "leadline", "apikey", "revoke", "ll_nothere", "--json"],
        env=child_env(settings, providers=False, LEADLINE_ENV="development"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert json.loads(result.stderr.strip().splitlines()[-1]) == {
        "error": "no active API key with that prefix (`leadline apikey list ORG` shows them)"
    }


def test_production_refuses_to_start_without_secrets(settings: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "leadline", "migrate"],
        env=child_env(
            settings, providers=False, LEADLINE_ENV="production", LEADLINE_MASTER_KEYS=""
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "refusing to start in production" in result.stderr
    assert "Traceback" not in result.stderr


def test_rotate_master_with_the_cli(
    settings: Settings, make_org: MakeOrg, context: TaskContext
) -> None:
    from leadline.settings import parse_master_keys
    from models.crypto import Keyring
    from models.keys import load_cipher

    org = make_org()
    old = settings.leadline_master_keys.get_secret_value()  # type: ignore[union-attr]
    new = f"cli2:{__import__('base64').b64encode(os.urandom(32)).decode()}"
    try:
        rotated = leadline(settings, "keys", "rotate-master", LEADLINE_MASTER_KEYS=f"{new},{old}")
        assert rotated["primary"] == "cli2" and rotated["rewrapped"] >= 1
        only_new = Keyring(keys=tuple(parse_master_keys(new)))
        with context.db.tenant(org.id) as session:
            assert load_cipher(session, only_new, org.id).current_version == 1
    finally:
        leadline(settings, "keys", "rotate-master", LEADLINE_MASTER_KEYS=f"{old},{new}")


def test_up_serves_and_ctrl_c_stops_every_process(settings: Settings, context: TaskContext) -> None:
    port, sandbox_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "leadline",
            "up",
            "--port",
            str(port),
            "--sandbox-port",
            str(sandbox_port),
        ],
        env=child_env(settings, providers=False, LEADLINE_ENV="development"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "stack did not come up"
            time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{sandbox_port}/sent", timeout=2).json() == []
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    group_alive = subprocess.run(
        ["ps", "-o", "pid,stat,args", "--no-headers", "-g", str(proc.pid)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert group_alive.stdout.strip() == ""


def test_demo_posts_leads_and_shows_only_ciphertext_sizes(
    settings: Settings, context: TaskContext
) -> None:
    port, sandbox_port = free_port(), free_port()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "leadline",
            "up",
            "--demo",
            "--port",
            str(port),
            "--sandbox-port",
            str(sandbox_port),
        ],
        env=child_env(settings, providers=False, LEADLINE_ENV="development"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 leads stored" in result.stdout
    assert "ciphertext bytes" in result.stdout
    assert "provider sandbox received" in result.stdout
    from leadline.commands.demo import DEMO_LEADS

    for lead in DEMO_LEADS:
        assert lead["name"] not in result.stdout + result.stderr
