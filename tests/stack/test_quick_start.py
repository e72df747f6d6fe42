"""The quick start `leadline up` prints, run line by line in bash against a stack started by
`leadline up` on free ports, and `leadline simulate` for every provider against that stack."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import redis
from sqlalchemy import func, select

from leadline.commands.quickstart import LEAD_PHONE, OWNER_PHONE, quick_start_steps
from leadline.devsecrets import read_dev_secrets
from leadline.ports import free_port
from leadline.settings import Settings
from tests.helpers import leadline_json
from tests.support.processes import child_env

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 180.0  # generous: a loaded machine starts Python processes slowly


@dataclass(frozen=True)
class Stack:
    intake_url: str
    sandbox_url: str
    env: dict[str, str]
    state_dir: Path


def stack_env(settings: Settings, state_dir: Path, intake_url: str) -> dict[str, str]:
    env = child_env(
        settings,
        providers=False,
        LEADLINE_ENV="development",
        LEADLINE_STATE_DIR=str(state_dir),
        LEADLINE_PUBLIC_URL=intake_url,
        LEADLINE_REDIS_NAMESPACE=f"{settings.leadline_redis_namespace}-quickstart",
    )
    return {k: v for k, v in env.items() if not k.startswith(("STRIPE_", "TELEGRAM_", "META_"))}


@pytest.fixture(scope="module")
def stack(
    settings: Settings, context: TaskContext, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    port, sandbox_port = free_port(), free_port()
    intake_url, sandbox_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sandbox_port}"
    state_dir = tmp_path_factory.mktemp("quick-start-state")
    env = stack_env(settings, state_dir, intake_url)
    up = [sys.executable, "-m", "leadline", "up", "--port", str(port)]
    log = (state_dir / "up.log").open("w")
    proc = subprocess.Popen(
        [*up, "--sandbox-port", str(sandbox_port)],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        wait_for(lambda: healthy(intake_url) or proc.poll() is not None, "the stack to start")
        assert proc.poll() is None, (state_dir / "up.log").read_text()[-3000:]
        yield Stack(intake_url, sandbox_url, env, state_dir)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        namespace = env["LEADLINE_REDIS_NAMESPACE"]
        client = redis.Redis.from_url(str(settings.leadline_redis_url))
        keys = list(client.scan_iter(match=f"{namespace}*", count=1000))
        if keys:
            client.delete(*keys)


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


class Shell:
    """One bash, fed line by line as a user pastes them, so shell variables carry over."""

    def __init__(self, env: dict[str, str], stderr: Path) -> None:
        self.errors = stderr.open("w")
        self.proc = subprocess.Popen(
            ["bash", "--norc", "--noprofile"],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def run(self, command: str) -> tuple[int, str]:
        assert self.proc.stdin is not None
        marker = f"__done_{uuid.uuid4().hex}"
        self.proc.stdin.write(f'{command}\necho "{marker} $?"\n')
        self.proc.stdin.flush()
        output: list[str] = []
        while True:
            line = self.lines.get(timeout=120)
            if line.startswith(marker):
                return int(line.split()[1]), "".join(output)
            output.append(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.errors.close()


def sent_to(stack: Stack, number: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = httpx.get(f"{stack.sandbox_url}/sent", timeout=5).json()
    return [message for message in messages if message["to"] == number]


def leads_of(context: TaskContext, org_id: uuid.UUID) -> int:
    from models.tables import Lead

    with context.db.tenant(org_id) as session:
        return int(session.scalar(select(func.count()).select_from(Lead)) or 0)


def help_reply_state(context: TaskContext, org_id: uuid.UUID) -> str | None:
    from models.messaging import OutboundMessage

    with context.db.tenant(org_id) as session:
        state: str | None = session.scalar(
            select(OutboundMessage.state).where(OutboundMessage.purpose == "help_reply")
        )
    return state


@pytest.mark.timeout(600)
def test_the_printed_quick_start_runs_verbatim(
    stack: Stack, context: TaskContext, tmp_path: Path
) -> None:
    shell = Shell(stack.env, tmp_path / "stderr")
    org_id: uuid.UUID | None = None
    try:
        for step in quick_start_steps(stack.intake_url, stack.sandbox_url):
            code, output = shell.run(step.command)
            errors = (tmp_path / "stderr").read_text()
            assert code == 0, f"{step.command!r} exited {code}: {output}{errors[-2000:]}"
            assert "Traceback" not in errors
            if org_id is None and step.command.startswith("ORG="):
                org_id = uuid.UUID(shell.run('echo "$ORG"')[1].strip())
            if step.shows == "lead_stored":
                assert json.loads(output)["id"]
                assert org_id is not None
                wait_for(lambda o=org_id: leads_of(context, o) == 1, "the lead to be stored")
            elif step.shows == "lead_texted":
                wait_for(lambda: len(sent_to(stack, OWNER_PHONE)) == 1, "the owner's alert")
                wait_for(lambda: len(sent_to(stack, LEAD_PHONE)) == 1, "the auto-reply")
            elif step.shows == "opted_out":
                assert output.startswith("200 SMS SM") and output.rstrip().endswith("processed")
            elif step.shows == "reply_blocked":
                assert org_id is not None
                wait_for(
                    lambda o=org_id: (
                        help_reply_state(context, o) not in (None, "queued", "sending")
                    ),
                    "the HELP reply to be claimed",
                )
                assert help_reply_state(context, org_id) == "blocked"
            elif step.shows == "nothing_new":
                recipients = [line.split()[0] for line in output.splitlines()]
                assert recipients.count(LEAD_PHONE) == 1  # the auto-reply, nothing after STOP
                assert len(sent_to(stack, LEAD_PHONE)) == 1
    finally:
        shell.close()


def simulate(stack: Stack, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leadline", "simulate", *args],
        env={**stack.env, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def linked_chats(context: TaskContext, org_id: uuid.UUID) -> int:
    from models.channels import TelegramChat

    with context.db.tenant(org_id) as session:
        query = select(func.count()).where(TelegramChat.status == "linked")
        return int(session.scalar(query.select_from(TelegramChat)) or 0)


def test_simulated_telegram_start_links_the_chat(stack: Stack, context: TaskContext) -> None:
    org = leadline_json(stack.env, "org", "create", "Telegram Roofing")["id"]
    code = leadline_json(stack.env, "telegram", "link-code", org)["code"]
    args = ("--chat-id", "777", "--url", stack.intake_url, "--json")
    result = simulate(stack, "telegram", org, f"/start {code}", *args)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == 200
    wait_for(lambda: linked_chats(context, uuid.UUID(org)) == 1, "the chat to be linked")


def test_simulated_meta_lead_needs_a_linked_account_then_makes_a_lead(
    stack: Stack, context: TaskContext
) -> None:
    org = leadline_json(stack.env, "org", "create", "Meta Roofing")["id"]
    refused = simulate(stack, "meta-lead", org, "--url", stack.intake_url)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"error: organisation {org} has no linked Meta account "
        f"(link one with leadline meta link {org} ACCOUNT_ID)"
    ]
    leadline_json(stack.env, "meta", "link", org, "1029384756")
    result = simulate(stack, "meta-lead", org, "--url", stack.intake_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("200 messenger message m_")
    assert "to page 1029384756" in result.stdout
    wait_for(lambda: leads_of(context, uuid.UUID(org)) == 1, "the Messenger lead")


def test_simulated_stripe_cancellation_cancels_the_linked_org(
    stack: Stack, context: TaskContext
) -> None:
    from models.tables import Organization

    org = leadline_json(stack.env, "org", "create", "Stripe Roofing")["id"]
    customer = f"cus_{uuid.uuid4().hex[:14]}"
    leadline_json(stack.env, "org", "link-stripe", org, customer)
    event = "customer.subscription.deleted"
    result = simulate(stack, "stripe", event, "--customer", customer, "--url", stack.intake_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"200 {event} evt_")

    def status() -> str | None:
        with context.db.maintenance() as session:
            found: str | None = session.scalar(
                select(Organization.status).where(Organization.id == uuid.UUID(org))
            )
        return found

    wait_for(lambda: status() == "cancelled", "the org to be cancelled")


def test_a_forged_signature_is_refused_with_the_fix(stack: Stack) -> None:
    org = str(uuid.uuid4())
    forged = simulate(
        stack, "telegram", org, "hello", "--url", stack.intake_url, TELEGRAM_SECRET_TOKEN="forged"
    )
    assert forged.returncode == 1
    assert forged.stderr.strip().splitlines() == [
        "error: the stack refused the telegram signature (403) (it runs with another "
        "TELEGRAM_SECRET_TOKEN: use the same value for both, or restart it with make run)"
    ]
    other_url = stack.intake_url.replace("127.0.0.1", "localhost")  # same server, other URL
    unsigned_url = simulate(stack, "sms", LEAD_PHONE, "+14155550100", "hi", "--url", other_url)
    assert unsigned_url.returncode == 1
    assert unsigned_url.stderr.strip().splitlines() == [
        "error: the stack refused the twilio signature (403) (it runs with another "
        f"TWILIO_AUTH_TOKEN or its LEADLINE_PUBLIC_URL is not {other_url}: use the same value "
        "for both, or restart it with make run)"
    ]
    stored = read_dev_secrets(stack.state_dir)
    assert stored is not None
    genuine = simulate(
        stack,
        "telegram",
        org,
        "hello",
        "--url",
        stack.intake_url,
        TELEGRAM_SECRET_TOKEN=stored.telegram_secret_token,
    )
    assert genuine.returncode == 0, genuine.stderr


def test_without_a_running_stack_simulate_says_how_to_start_one(
    settings: Settings, tmp_path: Path
) -> None:
    env = stack_env(settings, tmp_path, "http://127.0.0.1:9")
    for args in (
        ("sms", "+14155550123", "+14155550100", "STOP"),
        ("meta-lead", str(uuid.uuid4())),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "leadline", "simulate", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1, args
        assert result.stderr.splitlines() == [
            "error: no running stack found (start it with make run, or pass --url)"
        ]


def test_simulate_refuses_production(settings: Settings, tmp_path: Path) -> None:
    env = stack_env(settings, tmp_path, "https://leads.example.com")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "leadline",
            "simulate",
            "sms",
            "+14155550123",
            "+14155550100",
            "STOP",
            "--url",
            "http://127.0.0.1:9",
        ],
        env={**env, "LEADLINE_ENV": "production"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "never used in production" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "dev-secrets.json").exists()
