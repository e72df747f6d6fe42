"""`leadline alerts ...`: where an org's lead alerts go and what they say."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, TypedDict, TypeVar

import typer

from leadline.commands.common import (
    BadInput,
    JsonOption,
    emit,
    ensure_org,
    org_session,
    parse_email,
    parse_phone,
    parse_uuid,
    run_guarded,
    tenant_of,
)
from leadline.logging import redact_text
from tasks.context import open_runtime

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from models.crypto import OrgCipher

T = TypeVar("T")


class AlertSettings(TypedDict):
    """`leadline alerts list`: where alerts go (numbers masked) and what they say."""

    numbers: list[str]
    emails: list[str]
    telegram_chats: int
    program: str
    contact: str
    frequency: str
    autoreply: bool
    templates: dict[str, str]


alerts_app = typer.Typer(
    help="Lead alerts: SMS numbers, emails, templates, HELP details.", no_args_is_help=True
)


def _in_org(org: str, work: Callable[[Session, OrgCipher, uuid.UUID], T], as_json: bool) -> T:
    """Run work(session, cipher, org_id) in one tenant transaction, errors as one-liners."""
    org_id = parse_uuid(org, "ORG")

    def run() -> T:
        context = open_runtime()
        with org_session(context, org_id) as session:
            return work(session, context.keys.cipher(session, org_id), org_id)

    return run_guarded(run, as_json)


@alerts_app.command("add-number")
def add_number(org: str, number: str, as_json: bool = JsonOption) -> None:
    """Send lead alerts by SMS to NUMBER (+E.164)."""
    from models.alert_settings import add_alert_number

    e164 = parse_phone(number)
    row_id = _in_org(org, lambda s, c, _: add_alert_number(s, c, e164), as_json)
    emit({"id": str(row_id), "number": redact_text(e164)}, as_json, f"alert number {row_id} added")


@alerts_app.command("remove-number")
def remove_number(org: str, number: str, as_json: bool = JsonOption) -> None:
    """Stop sending lead alerts to NUMBER."""
    from models.alert_settings import remove_alert_number

    e164 = parse_phone(number)
    row_id = _in_org(org, lambda s, c, _: remove_alert_number(s, c, e164), as_json)
    emit({"id": str(row_id), "removed": True}, as_json, f"alert number {row_id} removed")


@alerts_app.command("add-email")
def add_email(org: str, address: str, as_json: bool = JsonOption) -> None:
    """Send lead alerts by email to ADDRESS (once the org has `org settings --email-from`)."""
    from models.alert_settings import add_alert_email

    checked = parse_email(address)
    row_id = _in_org(org, lambda s, c, _: add_alert_email(s, c, checked), as_json)
    emit({"id": str(row_id), "email": redact_text(checked)}, as_json, f"alert email {row_id} added")


@alerts_app.command("remove-email")
def remove_email(org: str, address: str, as_json: bool = JsonOption) -> None:
    """Stop sending lead alerts to ADDRESS."""
    from models.alert_settings import remove_alert_email

    checked = parse_email(address)
    row_id = _in_org(org, lambda s, c, _: remove_alert_email(s, c, checked), as_json)
    emit({"id": str(row_id), "removed": True}, as_json, f"alert email {row_id} removed")


@alerts_app.command("list")
def list_alerts(org: str, as_json: bool = JsonOption) -> None:
    """Alert numbers (masked), linked Telegram chats and the effective settings."""
    from models.alert_settings import (
        alert_emails,
        alert_numbers,
        linked_chats,
        load_org_messaging,
    )
    from models.message_templates import DEFAULT_TEMPLATES

    def work(session: Session, cipher: OrgCipher, org_id: uuid.UUID) -> AlertSettings:
        org_messaging = load_org_messaging(session, org_id, None)
        return {
            "numbers": [redact_text(n.address) for n in alert_numbers(session, cipher)],
            "emails": [redact_text(e.address) for e in alert_emails(session, cipher)],
            "telegram_chats": len(linked_chats(session, cipher)),
            "program": org_messaging.program,
            "contact": org_messaging.contact,
            "frequency": org_messaging.frequency,
            "autoreply": org_messaging.autoreply,
            "templates": {name: org_messaging.template(name) for name in DEFAULT_TEMPLATES},
        }

    data = _in_org(org, work, as_json)
    lines = [f"alert numbers: {', '.join(data['numbers']) or 'none'}"]
    lines.append(f"alert emails: {', '.join(data['emails']) or 'none'}")
    lines.append(f"linked telegram chats: {data['telegram_chats']}")
    lines.append(f"autoreply to consenting leads: {'on' if data['autoreply'] else 'off'}")
    lines += [f"{name}: {text!r}" for name, text in data["templates"].items()]
    emit(data, as_json, "\n".join(lines))


@alerts_app.command("template")
def template(
    org: str,
    name: str,
    text: str | None = typer.Argument(None, help="Template text with {placeholders}."),
    reset: bool = typer.Option(False, "--reset", help="Go back to the default template."),
    as_json: bool = JsonOption,
) -> None:
    """Set template NAME (owner_alert_sms, help_reply, ...) or --reset it."""
    from models.alert_settings import set_template

    if (text is None) == (not reset):
        raise BadInput("give TEXT or --reset, not both (see `leadline alerts template --help`)")
    _in_org(
        org, lambda s, _, org_id: set_template(s, org_id, name, None if reset else text), as_json
    )
    emit(
        {"template": name, "reset": reset},
        as_json,
        f"template {name} {'reset' if reset else 'set'}",
    )


@alerts_app.command("settings")
def settings(
    org: str,
    program: str | None = typer.Option(None, help="Program name used in HELP replies."),
    contact: str | None = typer.Option(None, help="Support contact used in HELP replies."),
    frequency: str | None = typer.Option(None, help="Message frequency used in HELP replies."),
    autoreply: bool | None = typer.Option(None, "--autoreply/--no-autoreply", help="Auto-reply."),
    as_json: bool = JsonOption,
) -> None:
    """Program details for HELP replies, and the auto-reply to leads who consented to SMS."""
    from models.alert_settings import update_program

    def work(session: Session, _: OrgCipher, org_id: uuid.UUID) -> None:
        update_program(
            session,
            org_id,
            program=program,
            contact=contact,
            frequency=frequency,
            autoreply=autoreply,
        )

    _in_org(org, work, as_json)
    emit({"updated": True}, as_json, "messaging settings updated")


@alerts_app.command("unknown")
def unknown(
    org: str | None = typer.Argument(None, help="Only this organisation's messages."),
    as_json: bool = JsonOption,
) -> None:
    """Messages whose outcome reconciliation could not decide (for a person): ids only."""
    from models.outbound_messages import unknown_outbound

    org_id = parse_uuid(org, "ORG") if org else None

    def run() -> list[dict[str, object]]:
        context = open_runtime()
        if org_id is not None:
            ensure_org(context, org_id)
        with context.db.maintenance() as session:
            return unknown_outbound(session, org_id=org_id)

    rows = run_guarded(run, as_json)
    text = "\n".join(f"{r['id']} org {r['org_id']} {r['channel']} {r['updated_at']}" for r in rows)
    emit(rows, as_json, text or "no messages in state unknown")


RESOLUTIONS = ("sent", "failed")


@alerts_app.command("resolve")
def resolve(
    message_id: str,
    outcome: str = typer.Option(..., "--as", help="sent or failed, as the provider says."),
    as_json: bool = JsonOption,
) -> None:
    """Record what the provider says about an `unknown` message: --as sent|failed (audited)."""
    from models.outbound_messages import outbound_org, resolve_unknown

    message = parse_uuid(message_id, "MESSAGE_ID")
    if outcome not in RESOLUTIONS:
        raise BadInput(f"--as must be sent or failed, not {outcome!r} (what the provider shows)")

    def run() -> None:
        context = open_runtime()
        with tenant_of(context, lambda s: outbound_org(s, message)) as (session, org_id):
            resolve_unknown(session, message, outcome, context.clock())
        emit(
            {"id": str(message), "org_id": str(org_id), "state": outcome},
            as_json,
            f"message {message} marked {outcome}",
        )

    run_guarded(run, as_json)
