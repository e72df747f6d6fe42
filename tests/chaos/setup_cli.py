"""The tenants' set-up, run as one child process: `python -m tests.chaos.setup_cli`.

Each step is a `leadline ... --json` command, parsed and run by the CLI itself (the typer app,
in this process), so the CLI's import cost is paid once instead of once per command. Reads
the orgs to create (JSON) on stdin; writes what was created (JSON) as its last stdout line.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from typing import Any

ENDPOINT_EVENTS = "lead.created,lead.updated,message.received,optout.changed"


class StepFailed(Exception):
    """A command exited non-zero; the message names the command, never its arguments."""


def leadline(command: Any, label: str, *args: str) -> Any:
    output, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(errors):
        code = command.main(args=[*args, "--json"], standalone_mode=False)
    if code:
        last = (errors.getvalue().strip().splitlines() or ["(no output)"])[-1]
        raise StepFailed(f"`leadline {label}` exited with {code}: {last[:300]}")
    return json.loads(output.getvalue().strip().splitlines()[-1])


def create_org(
    command: Any, index: int, number: str, alert: str, webhook_url: str
) -> dict[str, str]:
    org = str(leadline(command, "org create", "org", "create", f"Chaos Roofing {index}")["id"])
    key = str(leadline(command, "apikey create", "apikey", "create", org)["key"])
    leadline(command, "number add", "number", "add", org, number)
    leadline(command, "alerts add-number", "alerts", "add-number", org, alert)
    leadline(command, "alerts settings", "alerts", "settings", org, "--autoreply")
    endpoint = leadline(
        command, "endpoint add", "endpoint", "add", org, webhook_url, "--events", ENDPOINT_EVENTS
    )
    customer = f"cus_chaos{index}{org[:8]}"
    leadline(command, "org link-stripe", "org", "link-stripe", org, customer)
    return {
        "org_id": org,
        "api_key": key,
        "endpoint_id": str(endpoint["id"]),
        "endpoint_secret": str(endpoint["secret"]),
        "customer": customer,
    }


def main() -> int:
    import typer

    from leadline.cli import app

    command = typer.main.get_command(app)
    wanted = json.load(sys.stdin)
    try:
        created = [
            create_org(command, org["index"], org["number"], org["alert"], org["webhook_url"])
            for org in wanted
        ]
    except StepFailed as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    print(json.dumps(created))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
