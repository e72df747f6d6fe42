"""The `leadline` command: one declared CLI for every role and operator task."""

from __future__ import annotations

import typer

from leadline.commands.alerts import alerts_app
from leadline.commands.audit import audit_app
from leadline.commands.dlq import dlq_app
from leadline.commands.intake import meta_app, number_app, telegram_app
from leadline.commands.keys import keys_app
from leadline.commands.orgs import apikey_app, org_app
from leadline.commands.retention import backup_app, export, lead_app, org_delete
from leadline.commands.schedule import schedule_app, scheduler
from leadline.commands.serve import intake, migrate, sandbox, worker
from leadline.commands.simulate import simulate_app
from leadline.commands.status import status
from leadline.commands.up import up
from leadline.commands.webhooks import endpoint_app, webhook_app

app = typer.Typer(
    help="Leadline: encrypted, tenant-isolated lead intake and alerts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(up)
app.command()(migrate)
app.command()(intake)
app.command()(worker)
app.command()(sandbox)
app.command()(status)
app.add_typer(org_app, name="org")
app.add_typer(apikey_app, name="apikey")
app.add_typer(keys_app, name="keys")
app.add_typer(number_app, name="number")
app.add_typer(meta_app, name="meta")
app.add_typer(telegram_app, name="telegram")
app.add_typer(alerts_app, name="alerts")
app.command()(scheduler)
app.command()(export)
org_app.command("delete")(org_delete)
app.add_typer(schedule_app, name="schedule")
app.add_typer(backup_app, name="backup")
app.add_typer(lead_app, name="lead")
app.add_typer(dlq_app, name="dlq")
app.add_typer(audit_app, name="audit")
app.add_typer(endpoint_app, name="endpoint")
app.add_typer(webhook_app, name="webhook")
app.add_typer(simulate_app, name="simulate")


def main() -> None:
    app()
