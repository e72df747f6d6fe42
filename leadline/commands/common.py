"""Shared pieces of the CLI: output, errors, and wiring settings to the database and broker.

The CLI is the composition root: it is the one place in leadline/ that imports the packages
to its right (models, workers, tasks, intake, scheduler).

Errors: a command raises a LeadlineError (or calls `fail`) and the root command
(leadline.cli) prints it as one line, `error: <what> (<how to fix>)`, exit code 1.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn, TypeVar

import typer

from leadline.errors import LeadlineError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tasks.context import TaskContext

JsonOption = typer.Option(False, "--json", help="Machine-readable output.")
T = TypeVar("T")
# What a command prints with --json: an object or a list (values json.dumps can write, or
# anything str() renders, such as UUIDs and datetimes).
Output = Mapping[str, object] | Sequence[object]


class BadInput(LeadlineError):
    """A value typed on the command line is not acceptable (exit code 1, not a usage error)."""


def emit(data: Output, as_json: bool, text: str) -> None:
    if as_json:
        typer.echo(json.dumps(data, default=str, indent=None))
    else:
        typer.echo(text)


def error_line(message: str, as_json: bool) -> str:
    return json.dumps({"error": message}) if as_json else f"error: {message}"


def fail(message: str, as_json: bool = False, code: int = 1) -> NoReturn:
    typer.echo(error_line(message, as_json), err=True)
    raise typer.Exit(code)


def parse_uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise BadInput(f"{what} must be a UUID ({_uuid_hint(what)})") from None


def _uuid_hint(what: str) -> str:
    listings = {
        "ORG": "`leadline org list` shows them",
        "ENDPOINT": "`leadline endpoint list ORG` shows them",
        "BACKUP_ID": "`leadline backup list` shows them",
        "MESSAGE_ID": "`leadline alerts unknown` shows them",
        "DELIVERY_ID": "`leadline endpoint attempts ENDPOINT` shows them",
    }
    return listings.get(what, "copy the id as printed, e.g. 7c9e6679-7425-40de-944b-e07cc1f877bf")


def parse_email(value: str, what: str = "ADDRESS") -> str:
    """An email address, checked for syntax (models.normalize.sender_address)."""
    from models.normalize import InvalidEmailAddress, sender_address

    try:
        return sender_address(value)
    except InvalidEmailAddress:
        raise BadInput(f"{what} is not a valid email address (name@example.com)") from None


def parse_phone(value: str, what: str = "NUMBER", region: str | None = None) -> str:
    """E.164 form of a number; a national number is read in `region` (an org's default)."""
    from models.normalize import InvalidPhoneNumber, NationalNumberWithoutRegion, normalize_phone

    try:
        return normalize_phone(value, region)
    except NationalNumberWithoutRegion:
        raise BadInput(
            f"{what} is a national number and the organisation has no default region (give it "
            "in E.164 form, e.g. +14155550123, or set one: leadline org settings ORG "
            "--default-region US)"
        ) from None
    except InvalidPhoneNumber:
        raise BadInput(
            f"{what} is not a valid phone number (give it in E.164 form, e.g. +14155550123)"
        ) from None


@contextmanager
def org_session(context: TaskContext, org_id: uuid.UUID) -> Iterator[Session]:
    """One tenant transaction for an organisation that exists."""
    from models.orgs import get_organization

    with context.db.tenant(org_id) as session:
        get_organization(session, org_id)
        yield session


@contextmanager
def tenant_of(
    context: TaskContext, find_org: Callable[[Session], uuid.UUID]
) -> Iterator[tuple[Session, uuid.UUID]]:
    """The tenant transaction of the organisation that owns a row: `find_org` looks it up
    across organisations (its own short maintenance transaction) first."""
    with context.db.maintenance() as session:
        org_id = find_org(session)
    with context.db.tenant(org_id) as session:
        yield session, org_id


def ensure_org(context: TaskContext, org_id: uuid.UUID) -> None:
    """Fail with a clear message before work starts when the organisation does not exist."""
    from models.orgs import get_organization

    with context.db.tenant(org_id) as session:
        get_organization(session, org_id)


def run_guarded(fn: Callable[[], T], as_json: bool) -> T:
    """Turn LeadlineErrors into a clear message and exit code 1, never a traceback."""
    try:
        return fn()
    except LeadlineError as exc:
        fail(str(exc), as_json)
    except KeyboardInterrupt:
        sys.exit(130)
