"""`leadline optout add`: an opt-out the business received another way (by email, by phone, on
its website, in person), recorded like a STOP (tasks/optouts.py), audited with the operator as
actor, blocking every later message to the number. Only the person lifts it, by texting START.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

import typer

from leadline.commands.common import (
    BadInput,
    JsonOption,
    emit,
    org_session,
    parse_phone,
    parse_uuid,
    run_guarded,
)
from leadline.jsondata import JsonObject
from leadline.logging import redact_text
from models.normalize import has_control_characters
from tasks.context import open_runtime
from tasks.optouts import REPORTED_CHANNELS

optout_app = typer.Typer(
    help="Opt-outs received outside SMS (email, phone, web, in person).", no_args_is_help=True
)
CLI_ACTOR = "cli"
MAX_NOTE_CHARS = 1000


class ReportedChannel(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    WEB = "web"
    IN_PERSON = "in_person"


assert tuple(ReportedChannel) == REPORTED_CHANNELS  # one list, checked where both are seen


@optout_app.command("add")
def optout_add(
    org: str,
    number: str,
    channel: ReportedChannel = typer.Option(..., "--channel", help="How it reached you."),
    note: str | None = typer.Option(None, "--note", help="What was said (stored encrypted)."),
    as_json: bool = JsonOption,
) -> None:
    """Record that NUMBER (E.164, or national in the org's default region) asked ORG to
    stop: nothing more is sent to it."""
    org_id = parse_uuid(org, "ORG")
    if number.strip().startswith("+"):
        parse_phone(number)  # a bad number is refused before any connection
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise BadInput(f"--note is longer than {MAX_NOTE_CHARS} characters (shorten it)")
    if note is not None and has_control_characters(note, line_breaks_allowed=True):
        raise BadInput("--note holds control characters (only line breaks may be kept)")

    def run() -> None:
        phone, recorded = record(org_id, number, channel.value, note)
        masked = redact_text(phone)
        text = (
            f"{masked} opted out of {org} ({recorded['reason']})"
            if recorded["created"]
            else f"{masked} was already opted out of {org} (unchanged)"
        )
        emit(recorded, as_json, text)

    run_guarded(run, as_json)


def record(
    org_id: uuid.UUID, number: str, channel: str, note: str | None
) -> tuple[str, JsonObject]:
    """The number in E.164 and what was recorded (without the number)."""
    from models.orgs import default_region
    from tasks.after_commit import AfterCommit
    from tasks.optouts import record_reported_optout

    context = open_runtime()
    after_commit = AfterCommit()
    with org_session(context, org_id) as session:
        phone = parse_phone(number, region=default_region(session, org_id))
        cipher = context.keys.cipher(session, org_id)
        recorded = record_reported_optout(
            session, cipher, phone, channel, note, CLI_ACTOR, after_commit, context.clock()
        )
    after_commit.flush()
    suppression = recorded.suppression
    return phone, {
        "id": str(suppression.id),
        "org_id": str(org_id),
        "lead_id": str(suppression.lead_id) if suppression.lead_id else None,
        "reason": suppression.reason,
        "created": recorded.created,
        "created_at": suppression.created_at.isoformat(),
    }
