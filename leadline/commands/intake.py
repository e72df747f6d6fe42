"""Intake routing and credentials: `number`, `meta`, `telegram` groups, plus
`org link-stripe` and `apikey signing-secret` (attached to their groups on import)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TypeVar

import typer
from sqlalchemy.orm import Session

from leadline.commands.common import (
    JsonOption,
    emit,
    fail,
    org_session,
    parse_phone,
    parse_uuid,
    run_guarded,
)
from leadline.commands.orgs import apikey_app, org_app
from tasks.context import TaskContext, open_runtime

T = TypeVar("T")

number_app = typer.Typer(
    help="Twilio numbers owned by an org (route inbound SMS).", no_args_is_help=True
)
meta_app = typer.Typer(
    help="Meta pages / Instagram / WhatsApp accounts of an org.", no_args_is_help=True
)
telegram_app = typer.Typer(
    help="Telegram chats that receive an org's alerts.", no_args_is_help=True
)


def in_tenant(org: str, work: Callable[[TaskContext, Session, uuid.UUID], T]) -> T:
    """Run `work(context, session, org_id)` in one tenant transaction for ORG (which exists)."""
    org_id = parse_uuid(org, "ORG")
    context = open_runtime()
    with org_session(context, org_id) as session:
        return work(context, session, org_id)


MessagingServiceOption = typer.Option(
    None,
    "--messaging-service",
    help="Send this number's SMS through a Twilio Messaging Service (MG…, 10DLC) instead of From.",
)


@number_app.command("add")
def number_add(
    org: str,
    number: str,
    messaging_service: str | None = MessagingServiceOption,
    as_json: bool = JsonOption,
) -> None:
    """Route inbound SMS sent to NUMBER (E.164, or national in the org's default region) to ORG."""
    from models.orgs import default_region
    from models.routing import add_phone_number, set_messaging_service

    parse_uuid(org, "ORG")
    if number.strip().startswith("+"):
        parse_phone(number)  # a bad number is refused before any connection
    check_messaging_service(messaging_service, as_json)

    def add(_context: TaskContext, session: Session, org_id: uuid.UUID) -> str:
        e164 = parse_phone(number, region=default_region(session, org_id))
        added = add_phone_number(session, org_id, e164)
        if messaging_service is not None:
            set_messaging_service(session, org_id, added, messaging_service)
        return added

    def run() -> None:
        added = in_tenant(org, add)
        emit(
            {"org_id": org, "number": added, "messaging_service_sid": messaging_service},
            as_json,
            f"{added} now routes to {org}" + via(messaging_service),
        )

    run_guarded(run, as_json)


@number_app.command("set-service")
def number_set_service(org: str, number: str, service: str, as_json: bool = JsonOption) -> None:
    """Send NUMBER's SMS through the Messaging Service SERVICE (MG…), or `none` for From."""
    from models.routing import set_messaging_service

    parse_uuid(org, "ORG")
    sid = None if service.strip().casefold() == "none" else service.strip()
    check_messaging_service(sid, as_json)

    def run() -> None:
        changed = in_tenant(
            org, lambda _c, session, org_id: set_messaging_service(session, org_id, number, sid)
        )
        emit(
            {"org_id": org, "number": changed, "messaging_service_sid": sid},
            as_json,
            f"{changed} sends" + (via(sid) or " from itself (From)"),
        )

    run_guarded(run, as_json)


def check_messaging_service(sid: str | None, as_json: bool) -> None:
    from models.routing import MESSAGING_SERVICE_SID

    if sid is not None and MESSAGING_SERVICE_SID.fullmatch(sid) is None:
        fail(f"{sid!r} is not a Messaging Service SID (MG followed by 32 hex digits)", as_json)


def via(sid: str | None) -> str:
    return f" (sends through Messaging Service {sid})" if sid else ""


@number_app.command("remove")
def number_remove(org: str, number: str, as_json: bool = JsonOption) -> None:
    """Stop routing inbound SMS sent to NUMBER (E.164) to ORG (audited)."""
    from models.routing import remove_phone_number

    parse_uuid(org, "ORG")
    e164 = parse_phone(number)

    def run() -> None:
        in_tenant(org, lambda _c, session, org_id: remove_phone_number(session, org_id, e164))
        emit({"org_id": org, "number": e164, "removed": True}, as_json, f"{e164} removed")

    run_guarded(run, as_json)


@number_app.command("list")
def number_list(org: str, as_json: bool = JsonOption) -> None:
    """The numbers ORG owns."""
    from models.routing import list_phone_number_services

    def run() -> None:
        numbers = in_tenant(org, lambda _c, session, _o: list_phone_number_services(session))
        lines = [f"{row['number']}{via(row['messaging_service_sid'])}" for row in numbers]
        emit(numbers, as_json, "\n".join(lines) or "no numbers")

    run_guarded(run, as_json)


@org_app.command("link-stripe")
def org_link_stripe(org: str, customer_id: str, as_json: bool = JsonOption) -> None:
    """Route Stripe events of CUSTOMER_ID (cus_...) to ORG's billing state."""
    from models.billing import link_stripe_customer

    def run() -> None:
        in_tenant(
            org, lambda _c, session, org_id: link_stripe_customer(session, org_id, customer_id)
        )
        emit(
            {"org_id": org, "stripe_customer_id": customer_id},
            as_json,
            f"linked {customer_id} to {org}",
        )

    run_guarded(run, as_json)


@apikey_app.command("signing-secret")
def apikey_signing_secret(org: str, as_json: bool = JsonOption) -> None:
    """Create or rotate ORG's Standard Webhooks secret for signed POST /v1/leads.

    Shown once. After a rotation the previous secret stays valid for 24 hours."""
    from models.routing import rotate_signing_secret

    def work(context: TaskContext, session: Session, org_id: uuid.UUID) -> str:
        secret: str = rotate_signing_secret(
            session, context.keys.cipher(session, org_id), context.clock()
        )
        return secret

    def run() -> None:
        secret = in_tenant(org, work)
        emit(
            {"org_id": org, "secret": secret},
            as_json,
            f"signing secret (shown once, store it now):\n{secret}",
        )

    run_guarded(run, as_json)


@meta_app.command("link")
def meta_link(org: str, account_id: str, as_json: bool = JsonOption) -> None:
    """Route Meta messages to ACCOUNT_ID (page, Instagram or WhatsApp id) to ORG."""
    from models.routing import add_meta_account

    def run() -> None:
        in_tenant(org, lambda _c, session, org_id: add_meta_account(session, org_id, account_id))
        emit({"org_id": org, "account_id": account_id}, as_json, f"linked {account_id} to {org}")

    run_guarded(run, as_json)


@meta_app.command("unlink")
def meta_unlink(org: str, account_id: str, as_json: bool = JsonOption) -> None:
    """Stop routing Meta messages to ACCOUNT_ID to ORG (audited)."""
    from models.routing import remove_meta_account

    parse_uuid(org, "ORG")

    def run() -> None:
        in_tenant(org, lambda _c, session, org_id: remove_meta_account(session, org_id, account_id))
        emit(
            {"org_id": org, "account_id": account_id, "removed": True},
            as_json,
            f"unlinked {account_id} from {org}",
        )

    run_guarded(run, as_json)


@telegram_app.command("link-code")
def telegram_link_code(org: str, as_json: bool = JsonOption) -> None:
    """A one-time code (valid 1 h): send `/start CODE` to the bot from the chat to link it."""
    from models.telegram_links import create_link_code

    def run() -> None:
        code = in_tenant(
            org, lambda c, session, org_id: create_link_code(session, org_id, c.clock())
        )
        emit(
            {"org_id": org, "code": code},
            as_json,
            f"send this to the bot from the chat:\n/start {code}",
        )

    run_guarded(run, as_json)


@telegram_app.command("link")
def telegram_link(org: str, chat_id: int, as_json: bool = JsonOption) -> None:
    """Link CHAT_ID to ORG's alerts (operator approval, e.g. of a chat that sent /start)."""
    from models.audit import record_audit
    from models.telegram_links import set_chat_status

    def work(context: TaskContext, session: Session, org_id: uuid.UUID) -> str:
        cipher = context.keys.cipher(session, org_id)
        chat = set_chat_status(session, cipher, chat_id, "linked", context.clock())
        record_audit(session, "cli", "telegram.chat_linked", org_id=org_id, target=str(chat.id))
        return str(chat.id)

    def run() -> None:
        row_id = in_tenant(org, work)
        emit({"org_id": org, "id": row_id, "status": "linked"}, as_json, f"chat linked ({row_id})")

    run_guarded(run, as_json)


@telegram_app.command("list")
def telegram_list(org: str, as_json: bool = JsonOption) -> None:
    """ORG's chats with their status (chat ids are shown decrypted to the operator)."""
    from models.telegram_links import CHAT_TABLE, list_chats

    def work(context: TaskContext, session: Session, org_id: uuid.UUID) -> list[dict[str, str]]:
        cipher = context.keys.cipher(session, org_id)
        return [
            {
                "id": str(chat.id),
                "chat_id": cipher.decrypt(
                    chat.chat_id_ct, CHAT_TABLE, "chat_id_ct", chat.id
                ).decode(),
                "status": chat.status,
            }
            for chat in list_chats(session)
        ]

    def run() -> None:
        chats = in_tenant(org, work)
        lines = [f"{c['chat_id']}  {c['status']}  ({c['id']})" for c in chats]
        emit(chats, as_json, "\n".join(lines) or "no chats")

    run_guarded(run, as_json)
