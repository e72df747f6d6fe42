"""`leadline up` as a user runs it: ports checked before anything starts, the public URL
following the port, and `leadline up --demo` next to a running stack without touching it."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select
from starlette.datastructures import MultiDict
from twilio.request_validator import RequestValidator

from leadline.ports import free_port
from leadline.settings import Settings
from tests.conftest import Org
from tests.e2e.test_cli import cli_env
from tests.helpers import wait_for

TWILIO_TOKEN = "stack-test-twilio-auth-token"
# Two stacks of five processes each start here; on a loaded machine that takes minutes.
pytestmark = pytest.mark.timeout(600)


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
def stack(settings: Settings, context: Any) -> Iterator[Stack]:
    """A stack on ports picked here, with its own state directory and Redis namespace."""
    port, sandbox_port = free_port(), free_port()
    env = cli_env(
        settings,
        LEADLINE_STATE_DIR=tempfile.mkdtemp(prefix="leadline-stack-"),
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


def signed_sms(url: str, params: list[tuple[str, str]]) -> tuple[bytes, dict[str, str]]:
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, MultiDict(params))
    headers = {
        "X-Twilio-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return urlencode(params).encode(), headers


def test_a_twilio_request_signed_for_the_chosen_port_is_accepted(
    stack: Stack, context: Any, make_org: Callable[[], Org]
) -> None:
    from models.intake import add_phone_number

    org = make_org()
    number = f"+1628555{secrets.randbelow(10_000):04d}"
    with context.db.tenant(org.id) as session:
        add_phone_number(session, org.id, number, actor="test")
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


def test_the_demo_runs_next_to_a_stack_and_leaves_it_working(
    stack: Stack, context: Any, make_org: Callable[[], Org]
) -> None:
    from models.tables import Lead

    demo = subprocess.run(
        [sys.executable, "-m", "leadline", "up", "--demo"],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "2 leads stored" in demo.stdout
    assert "provider sandbox received" in demo.stdout
    # The stack's sandbox saw none of the demo's messages, and the stack still takes leads.
    assert httpx.get(f"{stack.sandbox_url}/sent", timeout=5).json() == []
    assert healthy(stack.url)
    org = make_org()
    posted = httpx.post(
        f"{stack.url}/v1/leads",
        json={"name": "Ada", "phone": "+14155550177"},
        headers=org.auth,
        timeout=10,
    )
    assert posted.status_code == 202

    def stored() -> bool:
        with context.db.tenant(org.id) as session:
            return session.scalar(select(Lead.id)) is not None

    wait_for(stored, timeout=30)
