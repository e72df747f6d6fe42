"""`leadline simulate ...`: provider requests, signed as the providers sign them, sent to a
running development stack (docs/intake.md, "Sending signed provider requests to a local stack").

The target is the stack `leadline up` recorded in `<LEADLINE_STATE_DIR>/stack.json`, or
`--url`. Each signature covers the URL the request is sent to, which in development is the
stack's LEADLINE_PUBLIC_URL. Secrets come from the environment, else `dev-secrets.json`.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import httpx
import typer

from leadline import provider_signing
from leadline.commands.common import JsonOption, emit, fail, parse_uuid, run_guarded
from leadline.devsecrets import DEV_ACCOUNT_SID, provider_secret, refuse_in_production
from leadline.errors import ConfigError
from leadline.jsondata import JsonObject
from leadline.settings import Settings, get_settings
from leadline.stackfile import read_stack

simulate_app = typer.Typer(
    help="Send signed Twilio, Stripe, Telegram and Meta requests to the running stack.",
    no_args_is_help=True,
)
UrlOption = typer.Option(
    None, "--url", help="Intake URL to send to (default: the running stack's, from stack.json)."
)
DEFAULT_CHAT_ID = 424242
EVENT_TYPE = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")
TIMEOUT_SECONDS = 10.0
WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class Sent:
    """What was sent and what the intake answered."""

    provider: str
    url: str
    status: int
    external_id: str
    summary: str


def intake_url(settings: Settings, url: str | None, as_json: bool) -> str:
    """--url, else the running stack's intake URL; never production."""
    refuse_in_production(settings)
    if url:
        if not url.startswith(("http://", "https://")):
            fail(
                "--url must start with http:// or https:// (e.g. --url http://127.0.0.1:8000)",
                as_json,
            )
        return url.rstrip("/")
    stack = read_stack(Path(settings.leadline_state_dir))
    if stack is None:
        fail("no running stack found (start it with make run, or pass --url)", as_json)
    assert stack is not None
    return stack.intake_url


def post(url: str, body: bytes, headers: dict[str, str], as_json: bool) -> httpx.Response:
    try:
        return httpx.post(url, content=body, headers=headers, timeout=TIMEOUT_SECONDS)
    except httpx.HTTPError:
        base = url.split("/hooks/")[0]
        fail(f"could not reach {base} (start the stack with make run, or check --url)", as_json)
        raise  # unreachable: fail() exits


def answered(response: httpx.Response, sent: Sent, secret_env: str, as_json: bool) -> None:
    """Print the status and a one-line summary, or an error line naming the fix (exit 1).

    `secret_env` completes "it runs with another ..." when the stack refuses the signature."""
    if response.is_success:
        record = {
            "provider": sent.provider,
            "url": sent.url,
            "status": sent.status,
            "id": sent.external_id,
            "summary": sent.summary,
        }
        emit(record, as_json, f"{sent.status} {sent.summary}")
        return
    if response.status_code == 403:
        fail(
            f"the stack refused the {sent.provider} signature (403) (it runs with another "
            f"{secret_env}: use the same value for both, or restart it with make run)",
            as_json,
        )
    if response.status_code == 429:
        fail("the stack answered 429, rate limited (wait a minute and try again)", as_json)
    fail(f"the stack answered {response.status_code} (see its log for the reason)", as_json)


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@simulate_app.command("sms")
def simulate_sms(
    sender: str = typer.Argument(..., metavar="FROM", help="The texter's number (E.164)."),
    to: str = typer.Argument(..., help="The org's Twilio number (`leadline number add`)."),
    body: str = typer.Argument(..., help="The text, e.g. STOP, HELP or a question."),
    wait: bool = typer.Option(
        False, "--wait", help="Return once the stack's worker has processed the message."
    ),
    url: str | None = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """An inbound SMS as Twilio posts it to /hooks/twilio/sms, with X-Twilio-Signature."""
    from models.normalize import InvalidPhoneNumber, normalize_phone

    def run() -> None:
        settings = get_settings()
        numbers = {}
        for name, value in (("FROM", sender), ("TO", to)):
            try:
                numbers[name] = normalize_phone(value, default_region=None)
            except InvalidPhoneNumber:
                fail(f"{name} is not an E.164 phone number (write it like +14155550123)", as_json)
        target = intake_url(settings, url, as_json) + "/hooks/twilio/sms"
        token = provider_secret(settings, "twilio_auth_token")
        sid = new_sid("SM")
        account_sid = twilio_account_sid(settings)
        params = twilio_sms_params(sid, account_sid, numbers["FROM"], numbers["TO"])
        params.append(("Body", body))
        payload, headers = provider_signing.twilio_form(token, target, params)
        response = post(target, payload, headers, as_json)
        if response.status_code == 404:
            fail(
                f"{numbers['TO']} is no org's number, the stack answered 404 "
                f"(add it with leadline number add ORG {numbers['TO']})",
                as_json,
            )
        summary = f"SMS {sid} from {numbers['FROM']} to {numbers['TO']} accepted"
        if wait and response.is_success:
            summary += f", {wait_until_processed('twilio_sms', sid, as_json)}"
        answered(
            response,
            Sent("twilio", target, response.status_code, sid, summary),
            # Twilio signs the URL too: a stack whose public URL is not the one we call refuses.
            f"TWILIO_AUTH_TOKEN or its LEADLINE_PUBLIC_URL is not {target.split('/hooks/')[0]}",
            as_json,
        )

    run_guarded(run, as_json)


def wait_until_processed(source: str, external_id: str, as_json: bool) -> str:
    """The stored event's final status, polled in the stack's database (this process reaches
    it the way every operator command does)."""
    from sqlalchemy import select

    from models.tables import InboundEvent
    from tasks.context import open_runtime

    context = open_runtime()
    query = select(InboundEvent.status).where(
        InboundEvent.source == source, InboundEvent.external_id == external_id
    )
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        with context.db.maintenance() as session:
            status: str | None = session.scalar(query)
        if status is not None and status != "pending":
            return status
        time.sleep(0.2)
    fail(
        f"the stack did not process the message within {WAIT_SECONDS:.0f} s "
        "(is its worker running? see leadline status)",
        as_json,
    )
    return "pending"  # unreachable: fail() exits


def twilio_account_sid(settings: Settings) -> str:
    """Not a secret: the development default serves when neither source has one."""
    try:
        return provider_secret(settings, "twilio_account_sid")
    except ConfigError:
        return DEV_ACCOUNT_SID


def twilio_sms_params(sid: str, account_sid: str, sender: str, to: str) -> list[tuple[str, str]]:
    """The fields Twilio posts for an inbound SMS without media, in Twilio's order."""
    return [
        ("ToCountry", "US"),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("SmsSid", sid),
        ("SmsStatus", "received"),
        ("To", to),
        ("NumSegments", "1"),
        ("MessageSid", sid),
        ("AccountSid", account_sid),
        ("From", sender),
        ("ApiVersion", "2010-04-01"),
    ]


@simulate_app.command("stripe")
def simulate_stripe(
    event_type: str = typer.Argument(..., help="e.g. customer.subscription.deleted"),
    customer: str = typer.Option(
        ..., "--customer", help="The Stripe customer id (`leadline org link-stripe ORG CUS_ID`)."
    ),
    url: str | None = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """A Stripe event posted to /hooks/stripe with a Stripe-Signature header."""

    def run() -> None:
        if not EVENT_TYPE.match(event_type):
            fail(
                "EVENT_TYPE is not a Stripe event type (e.g. customer.subscription.deleted)",
                as_json,
            )
        if not customer.strip():
            fail("--customer must be a Stripe customer id such as cus_123", as_json)
        settings = get_settings()
        target = intake_url(settings, url, as_json) + "/hooks/stripe"
        event = stripe_event(event_type, customer, int(time.time()))
        payload = json.dumps(event, indent=2).encode()  # Stripe sends pretty-printed JSON
        secret = provider_secret(settings, "stripe_webhook_secret")
        headers = provider_signing.stripe_headers(secret, payload, int(time.time()))
        response = post(target, payload, headers, as_json)
        summary = (
            f"{event_type} {event['id']} for {customer} received "
            f"(applied if {customer} is linked with leadline org link-stripe)"
        )
        answered(
            response,
            Sent("stripe", target, response.status_code, event["id"], summary),
            "STRIPE_WEBHOOK_SECRET",
            as_json,
        )

    run_guarded(run, as_json)


class StripeEvent(TypedDict):
    id: str
    object: str
    api_version: str
    created: int
    livemode: bool
    pending_webhooks: int
    request: dict[str, str | None]
    type: str
    data: dict[str, JsonObject]


class TelegramUpdate(TypedDict):
    update_id: int
    message: JsonObject


def stripe_event(event_type: str, customer: str, now: int) -> StripeEvent:
    """A minimal event as Stripe sends it: the fields every event has, and its object."""
    return {
        "id": "evt_" + secrets.token_hex(12),
        "object": "event",
        "api_version": "2024-06-20",
        "created": now,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": stripe_object(event_type, customer, now)},
    }


def stripe_object(event_type: str, customer: str, now: int) -> JsonObject:
    if event_type.startswith("invoice."):
        return {
            "id": "in_" + secrets.token_hex(12),
            "object": "invoice",
            "customer": customer,
            "status": "open",
            "amount_due": 4900,
            "currency": "usd",
            "attempt_count": 1,
            "created": now,
        }
    if event_type.startswith("customer.subscription."):
        deleted = event_type.endswith(".deleted")
        return {
            "id": "sub_" + secrets.token_hex(12),
            "object": "subscription",
            "customer": customer,
            "status": "canceled" if deleted else "active",
            "cancel_at_period_end": False,
            "canceled_at": now if deleted else None,
            "ended_at": now if deleted else None,
            "created": now,
        }
    if event_type.startswith("customer."):
        return {"id": customer, "object": "customer", "created": now}
    return {"id": "obj_" + secrets.token_hex(12), "customer": customer, "created": now}


@simulate_app.command("telegram")
def simulate_telegram(
    org: str = typer.Argument(..., help="The org whose bot webhook receives the update."),
    text: str = typer.Argument(..., help="The message, e.g. /start CODE or /stop."),
    chat_id: int = typer.Option(DEFAULT_CHAT_ID, "--chat-id", help="The chat that writes."),
    url: str | None = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """A Telegram update posted to /hooks/telegram/ORG with the secret-token header."""
    org_id = parse_uuid(org, "ORG")

    def run() -> None:
        settings = get_settings()
        target = intake_url(settings, url, as_json) + f"/hooks/telegram/{org_id}"
        update = telegram_update(chat_id, text)
        payload = json.dumps(update, ensure_ascii=False).encode()
        secret = provider_secret(settings, "telegram_secret_token")
        response = post(target, payload, provider_signing.telegram_headers(secret), as_json)
        summary = f"telegram update {update['update_id']} from chat {chat_id} to {org_id} received"
        answered(
            response,
            Sent("telegram", target, response.status_code, str(update["update_id"]), summary),
            "TELEGRAM_SECRET_TOKEN",
            as_json,
        )

    run_guarded(run, as_json)


def telegram_update(chat_id: int, text: str) -> TelegramUpdate:
    """A private-chat message update, as the Bot API delivers it to a webhook."""
    update_id = secrets.randbelow(2**31 - 10**8) + 10**8
    return {
        "update_id": update_id,
        "message": {
            "message_id": secrets.randbelow(10**6) + 1,
            "from": {"id": chat_id, "is_bot": False, "first_name": "Ada", "language_code": "en"},
            "chat": {"id": chat_id, "first_name": "Ada", "type": "private"},
            "date": int(time.time()),
            "text": text,
        },
    }


@simulate_app.command("meta-lead")
def simulate_meta_lead(
    org: str = typer.Argument(..., help="The org; its first linked Meta account receives it."),
    text: str = typer.Option(
        "Hi, I'd like a quote", "--text", help="What the person writes to the page."
    ),
    account: str | None = typer.Option(
        None, "--account", help="The page id to write to (default: ORG's linked account)."
    ),
    url: str | None = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """A Messenger message to ORG's page, posted to /hooks/meta with X-Hub-Signature-256.

    The stack turns it into a lead (source messenger)."""
    org_id = parse_uuid(org, "ORG")

    def run() -> None:
        settings = get_settings()
        target = intake_url(settings, url, as_json) + "/hooks/meta"
        secret = provider_secret(settings, "meta_app_secret")
        page_id = account or linked_meta_account(org_id, as_json)
        user_id = str(secrets.randbelow(9 * 10**15) + 10**15)
        mid = "m_" + secrets.token_urlsafe(32)
        payload = messenger_message(page_id, user_id, mid, text)
        response = post(target, payload, provider_signing.meta_headers(secret, payload), as_json)
        summary = f"messenger message {mid[:16]}… from user {user_id} to page {page_id} received"
        answered(
            response,
            Sent("meta", target, response.status_code, mid, summary),
            "META_APP_SECRET",
            as_json,
        )

    run_guarded(run, as_json)


def linked_meta_account(org_id: uuid.UUID, as_json: bool) -> str:
    """The org's first linked account id (`leadline meta link`); exits when there is none."""
    from sqlalchemy import select

    from models.routing import MetaAccount
    from tasks.context import open_runtime

    context = open_runtime()
    with context.db.tenant(org_id) as session:
        account: str | None = session.scalar(
            select(MetaAccount.account_id).order_by(MetaAccount.created_at).limit(1)
        )
    if account is None:
        fail(
            f"organisation {org_id} has no linked Meta account "
            f"(link one with leadline meta link {org_id} ACCOUNT_ID)",
            as_json,
        )
    assert account is not None
    return account


def messenger_message(page_id: str, user_id: str, mid: str, text: str) -> bytes:
    """One Messenger text message, as Meta posts a `messages` webhook for a page."""
    now_ms = int(time.time() * 1000)
    body = {
        "object": "page",
        "entry": [
            {
                "id": page_id,
                "time": now_ms,
                "messaging": [
                    {
                        "sender": {"id": user_id},
                        "recipient": {"id": page_id},
                        "timestamp": now_ms,
                        "message": {"mid": mid, "text": text},
                    }
                ],
            }
        ],
    }
    return json.dumps(body, ensure_ascii=False).encode()
