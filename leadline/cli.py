"""The `leadline` command: one declared CLI for every role and operator task."""

from __future__ import annotations

import typer

from leadline.commands.audit import audit_app
from leadline.commands.dlq import dlq_app
from leadline.commands.keys import keys_app
from leadline.commands.orgs import apikey_app, org_app
from leadline.commands.serve import intake, migrate, sandbox, worker
from leadline.commands.status import status
from leadline.commands.up import up

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
app.add_typer(dlq_app, name="dlq")
app.add_typer(audit_app, name="audit")


def main() -> None:
    app()
