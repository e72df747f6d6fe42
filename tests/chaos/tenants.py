"""The organisations under test, set up through the CLI as an operator would.

One child process runs every command (tests/chaos/setup_cli.py): the same commands, each
parsed by the CLI, without paying its start-up once per command on a busy 2-core machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.chaos.errors import ChaosError
from tests.chaos.load import OrgTarget
from tests.chaos.receiver import WebhookReceiver

SETUP_TIMEOUT_SECONDS = 300.0
REPOSITORY = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Tenant:
    target: OrgTarget
    endpoint_id: str


def create_tenants(
    env: dict[str, str],
    receiver: WebhookReceiver,
    numbers: list[str],
    alert_numbers: list[str],
) -> list[Tenant]:
    """One org per number: its API key, Twilio number, alert number and auto-reply, an
    endpoint at the receiver (its secret registered there), a linked Stripe customer."""
    wanted = [
        {
            "index": index,
            "number": number,
            "alert": alert,
            "webhook_url": receiver.url(f"/org{index}"),
        }
        for index, (number, alert) in enumerate(zip(numbers, alert_numbers, strict=True))
    ]
    created = run_setup(env, wanted)
    tenants = []
    for index, (org, number, alert) in enumerate(zip(created, numbers, alert_numbers, strict=True)):
        receiver.register(f"/org{index}", org["endpoint_secret"])
        target = OrgTarget(org["org_id"], org["api_key"], number, alert, org["customer"])
        tenants.append(Tenant(target, org["endpoint_id"]))
    return tenants


def run_setup(env: dict[str, str], wanted: list[dict[str, object]]) -> list[dict[str, str]]:
    try:
        result = subprocess.run(
            [sys.executable, "-m", "tests.chaos.setup_cli"],
            input=json.dumps(wanted),
            env=env,
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            timeout=SETUP_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ChaosError(f"set-up did not finish in {SETUP_TIMEOUT_SECONDS:.0f} s") from None
    lines = result.stdout.strip().splitlines()
    answer = (
        json.loads(lines[-1]) if lines else {"error": f"set-up exited with {result.returncode}"}
    )
    if isinstance(answer, dict):
        raise ChaosError(str(answer.get("error", "set-up failed")))
    created: list[dict[str, str]] = answer
    return created
