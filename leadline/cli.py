"""The `leadline` command: one declared CLI for every role and operator task.

Every failure ends here as one line on stderr, `error: <what> (<how to fix>)` (or
`{"error": ...}` with `--json`): exit code 1 for bad input and failed work, 2 for usage errors
(unknown command or option, missing argument). `leadline --debug ...` shows the traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer
from pydantic import ValidationError
from typer.core import TyperGroup

from leadline.commands.alerts import alerts_app
from leadline.commands.audit import audit_app
from leadline.commands.campaigns import campaign_app
from leadline.commands.common import error_line
from leadline.commands.dlq import dlq_app
from leadline.commands.imports import import_leads
from leadline.commands.intake import meta_app, number_app, telegram_app
from leadline.commands.keys import keys_app
from leadline.commands.optouts import optout_app
from leadline.commands.orgs import apikey_app, org_app
from leadline.commands.retention import backup_app, export, lead_app, org_delete
from leadline.commands.schedule import schedule_app, scheduler
from leadline.commands.serve import intake, migrate, sandbox, worker
from leadline.commands.simulate import simulate_app
from leadline.commands.status import status
from leadline.commands.up import up
from leadline.commands.webhooks import endpoint_app, webhook_app
from leadline.errors import LeadlineError

USAGE_EXIT = 2


class LeadlineGroup(TyperGroup):
    """The root command: runs the CLI and renders whatever escapes a command as one line."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: object,
    ) -> int:
        argv = list(sys.argv[1:] if args is None else args)
        as_json = "--json" in argv
        try:
            result = super().main(
                argv,
                prog_name,
                complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
            code = result if isinstance(result, int) else 0
        except Exception as exc:  # every failure, rendered the one way
            if _debug_before_command(argv):
                raise
            code = report(exc, as_json)
        if standalone_mode:
            sys.exit(code)
        return code


def _debug_before_command(argv: list[str]) -> bool:
    """`--debug` is a root option: it counts only before the first command word."""
    for word in argv:
        if word == "--debug":
            return True
        if not word.startswith("-"):
            return False
    return False


def report(exc: Exception, as_json: bool) -> int:
    """Print one line for `exc` and return the exit code."""
    if isinstance(exc, typer.TyperException) and exc.exit_code == USAGE_EXIT:
        return usage_error(exc, as_json)
    typer.echo(error_line(describe(exc), as_json), err=True)
    return 1


def usage_error(exc: typer.TyperException, as_json: bool) -> int:
    if type(exc).__name__ == "NoArgsIsHelpError":
        return USAGE_EXIT  # the help text itself was already printed
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else "leadline"
    message = exc.format_message().rstrip(".")
    typer.echo(error_line(f"{message} (see `{path} --help`)", as_json), err=True)
    return USAGE_EXIT


def describe(exc: Exception) -> str:
    """What went wrong and how to fix it, without values that could be personal data."""
    if isinstance(exc, LeadlineError):
        return str(exc)
    if isinstance(exc, typer.Abort):
        return "aborted (nothing was changed)"
    if isinstance(exc, typer.TyperException):
        return exc.format_message()
    if isinstance(exc, ValidationError) and exc.title == "Settings":
        return f"invalid settings: {settings_problems(exc)} (fix them in the environment)"
    if isinstance(exc, OSError) and exc.filename is not None:
        reason = exc.strerror or type(exc).__name__
        return f"{reason}: {exc.filename} (check the path and its permissions)"
    from sqlalchemy.exc import DBAPIError, OperationalError

    if isinstance(exc, OperationalError):
        return "cannot reach the database (check LEADLINE_DATABASE_URL; `leadline status`)"
    if isinstance(exc, DBAPIError):
        return (
            f"the database refused the change ({type(exc.orig).__name__}; "
            "check the ids given, run with --debug for details)"
        )
    if _is_redis_error(exc):
        return "cannot reach Redis (check LEADLINE_REDIS_URL; `leadline status`)"
    return f"unexpected {type(exc).__name__} (run `leadline --debug ...` for the traceback)"


def settings_problems(exc: ValidationError) -> str:
    """Which settings are wrong and why, never the values given (they may be secrets)."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        message = error["msg"].removeprefix("Value error, ")
        names = ".".join(str(part) for part in error["loc"]).upper()
        problems.append(f"{names}: {message}" if names else message)
    return "; ".join(problems)


def _is_redis_error(exc: Exception) -> bool:
    import redis

    return isinstance(exc, redis.RedisError)


app = typer.Typer(
    name="leadline",
    cls=LeadlineGroup,
    help="Leadline: encrypted, tenant-isolated lead intake and alerts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def root(
    debug: bool = typer.Option(
        False, "--debug", help="Show the traceback of an unexpected failure."
    ),
) -> None:
    """Leadline: encrypted, tenant-isolated lead intake and alerts."""


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
app.add_typer(optout_app, name="optout")
app.add_typer(campaign_app, name="campaign")
app.command()(scheduler)
app.command()(export)
app.command("import")(import_leads)
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
