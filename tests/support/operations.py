"""Test-only pieces for the operator features: an actor that fails until fixed, running the
real CLI in a subprocess against the test database and Redis namespace, reading metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dramatiq
from dramatiq.middleware import CurrentMessage
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from leadline.logging import mark_sensitive
from leadline.settings import Settings
from tests.support.processes import child_env

if TYPE_CHECKING:
    from tasks.context import TaskContext

ROOT = Path(__file__).resolve().parents[2]
PERSON_NAME = "Ada Lovelace"
PERSON_PHONE = "+14155550123"
PERSON_EMAIL = "ada.lovelace@example.com"
FAKE_ROWS = [{"message_id": "SM-test-0001", "state": "unknown", "org_id": "org-test"}]


class ProviderOutage(Exception):
    """The failure the test actor raises while it is 'broken'."""


@dataclass
class FlakyActor:
    """An actor that fails (mentioning a person, as careless code might) while `broken`."""

    actor: dramatiq.Actor[Any, Any]
    broken: threading.Event = field(default_factory=threading.Event)
    runs: list[str] = field(default_factory=list)

    @property
    def queue(self) -> str:
        return self.actor.queue_name


def declare_flaky_actor(broker: dramatiq.Broker, name: str, **options: Any) -> FlakyActor:
    flaky: FlakyActor

    def run(lead_id: str) -> None:
        mark_sensitive(PERSON_NAME)
        if flaky.broken.is_set():
            raise ProviderOutage(
                f"could not alert {PERSON_NAME} at {PERSON_PHONE} / {PERSON_EMAIL} "
                f"about lead {lead_id}"
            )
        message = CurrentMessage.get_current_message()
        flaky.runs.append(message.message_id if message else "?")

    options = {"max_retries": 1, "min_backoff": 10, "max_backoff": 20, **options}
    actor = dramatiq.Actor(
        run, broker=broker, actor_name=name, queue_name=name, priority=0, options=options
    )
    flaky = FlakyActor(actor)
    flaky.broken.set()
    return flaky


def dead_letter_row(context: TaskContext, message_id: str) -> Any:
    from models.ops import DeadLetter

    with context.db.maintenance() as session:
        query = select(DeadLetter).where(DeadLetter.message_id == message_id)
        return session.scalars(query).first()


def run_cli(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The real `leadline` CLI, plus a fake attention source (tests/support/fake_attention_cli)."""
    return subprocess.run(
        [sys.executable, "-m", "tests.support.fake_attention_cli", *args],
        cwd=ROOT,
        env=child_env(settings, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def run_cli_batch(settings: Settings, *commands: list[str]) -> list[dict[str, Any]]:
    """Several CLI commands, in order, in one process: [{"code": int, "stdout": str}]."""
    result = run_cli(settings, "--batch", json.dumps(list(commands)))
    assert result.returncode == 0, result.stderr
    outputs: list[dict[str, Any]] = json.loads(result.stdout.splitlines()[-1])
    return outputs


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format; 0 when absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0
