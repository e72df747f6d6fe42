"""The `leadline` command: one declared CLI for every role and operator task."""

from __future__ import annotations

import typer

from leadline.commands.keys import keys_app
from leadline.commands.orgs import apikey_app, org_app
from leadline.commands.serve import intake, migrate, sandbox, worker
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
app.add_typer(org_app, name="org")
app.add_typer(apikey_app, name="apikey")
app.add_typer(keys_app, name="keys")
app.add_typer(endpoint_app, name="endpoint")
app.add_typer(webhook_app, name="webhook")


def main() -> None:
    app()
