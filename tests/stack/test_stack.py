"""`leadline up` as a user runs it: ports checked before anything starts, the public URL
following the port, and `leadline up --demo` next to a running stack without touching it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg
import pytest
from starlette.datastructures import MultiDict
from twilio.request_validator import RequestValidator

from leadline.ports import free_port
from leadline.settings import Settings
from tests.helpers import leadline_json, wait_for
from tests.support.processes import child_env
from tests.support.services import psycopg_url

TWILIO_TOKEN = "stack-test-twilio-auth-token"
# Two stacks of five processes each start here; on a loaded machine that takes minutes.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@dataclass(frozen=True)
class Stack:
    url: str
    sandbox_url: str
    env: dict[str, str]


def leadline_up(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "leadline", "up", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def stack(settings: Settings) -> Iterator[Stack]:
    """A stack on ports picked here, with its own state directory, database and namespace:
    other tests' rows are not its scheduler's to sweep, nor its sandbox's to receive."""
    from leadline.commands.demo import create_database, drop_database, with_database

    server_url = str(settings.leadline_database_url)
    database = f"leadline_stack_{uuid.uuid4().hex[:10]}"
    create_database(server_url, database)
    port, sandbox_port = free_port(), free_port()
    state_dir = Path(tempfile.mkdtemp(prefix="leadline-stack-"))
    env = child_env(
        settings,
        providers=False,
        LEADLINE_ENV="development",
        LEADLINE_DATABASE_URL=with_database(server_url, database),
        LEADLINE_STATE_DIR=str(state_dir),
        LEADLINE_REDIS_NAMESPACE=f"{settings.leadline_redis_namespace}-stack",
        LEADLINE_WORKER_METRICS_PORT="0",
        TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
    )
    proc = leadline_up(env, "--port", str(port), "--sandbox-port", str(sandbox_port))
    url = f"http://127.0.0.1:{port}"

    def up_or_exited() -> bool:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        return healthy(url)

    try:
        wait_for(up_or_exited, timeout=180, interval=0.2)
        yield Stack(url, f"http://127.0.0.1:{sandbox_port}", env)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        drop_database(server_url, database)
        shutil.rmtree(state_dir, ignore_errors=True)


def cli(stack: Stack, *args: str) -> Any:
    """`leadline ARGS --json` against the stack's database; the last line of its output."""
    return leadline_json(stack.env, *args)


def new_org(stack: Stack) -> tuple[str, dict[str, str]]:
    """An organisation in the stack's database and the headers of its API key."""
    org_id = str(cli(stack, "org", "create", "Stack Test Roofing")["id"])
    key = cli(stack, "apikey", "create", org_id)["key"]
    return org_id, {"Authorization": f"Bearer {key}"}


def stored_leads(stack: Stack, org_id: str) -> int:
    with psycopg.connect(psycopg_url(stack.env["LEADLINE_DATABASE_URL"])) as conn:
        row = conn.execute("SELECT count(*) FROM leads WHERE org_id = %s", (org_id,)).fetchone()
    return int(row[0]) if row else 0


def test_a_busy_port_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEADLINE_")}
        env["LEADLINE_STATE_DIR"] = str(tmp_path / "state")  # no service URLs: embedded
        for flags, setting in (
            (
                ["--port", str(busy), "--sandbox-port", "0"],
                "make run PORT=... or leadline up --port",
            ),
            (
                ["--port", "0", "--sandbox-port", str(busy)],
                "make run SANDBOX_PORT=... or leadline up --sandbox-port",
            ),
        ):
            result = subprocess.run(
                [sys.executable, "-m", "leadline", "up", *flags],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 1
            assert result.stdout == ""  # no banner
            assert result.stderr.splitlines() == [
                f"error: port {busy} is in use (choose another with {setting} ...)"
            ]
    assert not (tmp_path / "state").exists()  # no embedded server, no migration, no key


@pytest.mark.parametrize("role", ["intake", "sandbox"])
def test_a_role_on_a_busy_port_is_one_line(role: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEADLINE_")}
        env["LEADLINE_STATE_DIR"] = str(tmp_path / "state")
        result = subprocess.run(
            [sys.executable, "-m", "leadline", role, "--port", str(busy)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: port {busy} is in use (choose another with leadline {role} --port ...)"
    ]


def signed_sms(url: str, params: list[tuple[str, str]]) -> tuple[bytes, dict[str, str]]:
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, MultiDict(params))
    headers = {
        "X-Twilio-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return urlencode(params).encode(), headers


def test_a_twilio_request_signed_for_the_chosen_port_is_accepted(stack: Stack) -> None:
    org_id, _ = new_org(stack)
    number = "+16285550142"
    cli(stack, "number", "add", org_id, number)
    params = [
        ("MessageSid", "SM" + uuid.uuid4().hex),
        ("From", "+14155550123"),
        ("To", number),
        ("Body", "hello"),
    ]
    hook = f"{stack.url}/hooks/twilio/sms"
    body, headers = signed_sms(hook, params)
    accepted = httpx.post(hook, content=body, headers=headers, timeout=10)
    assert accepted.status_code == 200, accepted.text
    assert "<Response/>" in accepted.text

    # Signed for the default port the user never called: the signature covers the URL.
    body, headers = signed_sms("http://127.0.0.1:8000/hooks/twilio/sms", params)
    assert httpx.post(hook, content=body, headers=headers, timeout=10).status_code == 403


def test_the_demo_runs_next_to_a_stack_and_leaves_it_working(stack: Stack) -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "leadline", "up", "--demo"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "2 leads stored" in demo.stdout
    assert "provider sandbox received" in demo.stdout
    # The stack's sandbox saw none of the demo's messages, and the stack still takes leads.
    assert httpx.get(f"{stack.sandbox_url}/sent", timeout=5).json() == []
    assert healthy(stack.url)
    org_id, auth = new_org(stack)
    posted = httpx.post(
        f"{stack.url}/v1/leads",
        json={"name": "Ada", "phone": "+14155550177"},
        headers=auth,
        timeout=10,
    )
    assert posted.status_code == 202
    wait_for(lambda: stored_leads(stack, org_id) == 1, timeout=60)


def test_simulate_finds_the_running_stack_without_a_url(stack: Stack) -> None:
    """`up` records where it listens; `simulate` reads it, so no --url is needed."""
    from leadline.stackfile import read_stack

    state_dir = Path(stack.env["LEADLINE_STATE_DIR"])
    wait_for(lambda: read_stack(state_dir) is not None, timeout=30)
    recorded = read_stack(state_dir)
    assert recorded is not None and recorded.intake_url == stack.url
    org_id, _ = new_org(stack)
    number = "+16285550143"
    cli(stack, "number", "add", org_id, number)
    sent = cli(stack, "simulate", "sms", "+14155550124", number, "hello")
    assert sent["status"] == 200, sent
