"""Calling Twilio (twilio-python) and Telegram (httpx), and reading what they answered.

Every call returns a ProviderResult and never raises, because the caller has already marked the
row `sending` and must record something. The classification is the at-most-once rule:
only failures that prove the request never left (connection refused, DNS, connect timeout)
or that the provider explicitly refused (429, 5xx) are retried; anything that may have
reached the provider (read timeout, connection dropped after sending) is `unknown`.

Exceptions are never logged as text: their messages can contain URLs with the bot token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, TypedDict, cast

import httpx
import requests
import urllib3
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from leadline.jsondata import JsonObject, as_object
from leadline.logging import get_logger
from leadline.metrics import PROVIDER_ERRORS
from leadline.settings import Settings
from tasks.optouts import CARRIER_OPT_OUT_CODES

log = get_logger(__name__)
# twilio-python logs every request at INFO; URLs carry the account SID, so keep it quiet.
_twilio_http_log = logging.getLogger("leadline.providers.twilio_http")
_twilio_http_log.setLevel(logging.WARNING)

TWILIO_RATE_LIMITED = 20429
# blocked: the recipient opted out at the carrier; unlink: the Telegram chat is gone;
# unknown: the request may have reached the provider (never re-sent to a lead blindly);
# expired: the provider rejected the connection's token (Graph error 190).
ResultKind = Literal["sent", "retry", "failed", "blocked", "unlink", "unknown", "expired"]


@dataclass(frozen=True)
class ProviderResult:
    kind: ResultKind
    code: str | None = None
    provider_sid: str | None = None
    retry_after: float | None = None


def messaging_service(settings: Settings, number_service: str | None) -> str | None:
    """The Messaging Service an SMS goes through: its number's own, else the global one."""
    return number_service or settings.twilio_messaging_service_sid


def send_twilio_sms(
    settings: Settings, to: str, body: str, sender: str | None, number_service: str | None = None
) -> ProviderResult:
    """Sent `From` the sender, or through a Messaging Service (10DLC) when one applies:
    then Twilio picks the sending number from the service's pool."""
    service = messaging_service(settings, number_service)
    if not (settings.twilio_account_sid and settings.twilio_auth_token and (sender or service)):
        return ProviderResult("failed", code="not_configured")
    client = _twilio_client(settings)
    callback = settings.leadline_public_url.rstrip("/") + "/hooks/twilio/status"
    # Through a Messaging Service Twilio picks the number; otherwise it is sent From `sender`.
    origin = {"messaging_service_sid": service} if service else {"from_": sender}
    try:
        message = client.messages.create(to=to, body=body, status_callback=callback, **origin)
    except TwilioRestException as exc:
        return twilio_error_result(exc.status, exc.code)
    except requests.RequestException as exc:
        return _transport_error("twilio", exc, never_sent=_requests_never_sent(exc))
    return ProviderResult("sent", provider_sid=message.sid)


@dataclass(frozen=True)
class ProviderMessage:
    """One message as the provider lists it (for reconciling `unknown` rows)."""

    sid: str
    to: str
    sender: str | None
    body: str
    created_at: datetime | None
    messaging_service: str | None = None


TWILIO_LIST_LIMIT = 200


def list_twilio_messages(
    settings: Settings, to: str, sender: str | None, sent_since: date
) -> list[ProviderMessage] | None:
    """Messages Twilio holds to `to` (from `sender`), sent on or after that day; None when
    Twilio could not be asked (the caller tries again later)."""
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        return None
    options = {"to": to, "date_sent_after": sent_since.isoformat()}
    if sender:
        options["from_"] = sender
    try:
        listed = _twilio_client(settings).messages.list(limit=TWILIO_LIST_LIMIT, **options)
    except TwilioRestException as exc:
        PROVIDER_ERRORS.labels(provider="twilio", code=str(exc.code or exc.status)).inc()
        return None
    except requests.RequestException as exc:
        _transport_error("twilio", exc, never_sent=True)
        return None
    return [
        ProviderMessage(
            m.sid or "", m.to or "", m.from_, m.body or "", m.date_created, m.messaging_service_sid
        )
        for m in listed
    ]


def _twilio_client(settings: Settings) -> Client:
    assert settings.twilio_account_sid and settings.twilio_auth_token
    http_client = TwilioHttpClient(
        timeout=settings.leadline_provider_timeout_seconds, logger=_twilio_http_log
    )
    assert http_client.session is not None
    http_client.session.trust_env = False  # no proxies from the environment
    client = Client(
        settings.twilio_account_sid,
        settings.twilio_auth_token.get_secret_value(),
        http_client=http_client,
        environment={},  # TWILIO_EDGE / TWILIO_REGION must not reroute us
    )
    if settings.twilio_api_base:
        client.api.base_url = settings.twilio_api_base.rstrip("/")
    return client


def twilio_error_result(status: int, code: int | None) -> ProviderResult:
    """Twilio refused the request: an opted-out recipient is blocked, a rate limit or a 5xx is
    retried, and any other refusal (invalid or unreachable number, ...) is a failure."""
    label = str(code or status)
    PROVIDER_ERRORS.labels(provider="twilio", code=label).inc()
    if label in CARRIER_OPT_OUT_CODES:
        return ProviderResult("blocked", code=label)
    if code == TWILIO_RATE_LIMITED or status == 429 or status >= 500:
        return ProviderResult("retry", code=label)
    return ProviderResult("failed", code=label)


def _requests_never_sent(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(exc, requests.exceptions.ConnectionError):
        return False
    reason: object = exc.args[0] if exc.args else None
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        reason = reason.reason
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def _transport_error(provider: str, exc: Exception, never_sent: bool) -> ProviderResult:
    code = "connect" if never_sent else "no_answer"
    PROVIDER_ERRORS.labels(provider=provider, code=code).inc()
    log.warning("provider call failed", provider=provider, error=type(exc).__name__, code=code)
    return ProviderResult("retry" if never_sent else "unknown", code=code)


_HTTPX_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def send_telegram_message(settings: Settings, chat_id: str, text: str) -> ProviderResult:
    if settings.telegram_bot_token is None:
        return ProviderResult("failed", code="not_configured")
    token = settings.telegram_bot_token.get_secret_value()
    url = f"{settings.telegram_api_base.rstrip('/')}/bot{token}/sendMessage"
    target: int | str = int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id
    try:
        with httpx.Client(
            timeout=settings.leadline_provider_timeout_seconds, trust_env=False
        ) as client:
            response = client.post(url, json={"chat_id": target, "text": text})
    except _HTTPX_NEVER_SENT as exc:
        return _transport_error("telegram", exc, never_sent=True)
    except httpx.HTTPError as exc:
        return _transport_error("telegram", exc, never_sent=False)
    return _telegram_answer(response)


class TelegramSentMessage(TypedDict, total=False):
    message_id: int


class TelegramParameters(TypedDict, total=False):
    retry_after: float


class TelegramAnswer(TypedDict, total=False):
    """What the Bot API answers (https://core.telegram.org/bots/api#making-requests)."""

    ok: bool
    result: TelegramSentMessage
    description: str
    parameters: TelegramParameters | None


def _telegram_answer(response: httpx.Response) -> ProviderResult:
    try:
        data = cast(TelegramAnswer, response.json())
    except ValueError:
        data = {}
    if response.status_code == 200 and data.get("ok"):
        return ProviderResult("sent", provider_sid=str(data.get("result", {}).get("message_id")))
    status = response.status_code
    PROVIDER_ERRORS.labels(provider="telegram", code=str(status)).inc()
    description = str(data.get("description", "")).casefold()
    if status == 429:
        retry_after = (data.get("parameters") or {}).get("retry_after", 1)
        return ProviderResult("retry", code="429", retry_after=float(retry_after))
    if status == 403 or (status == 400 and "chat not found" in description):
        return ProviderResult("unlink", code=str(status))
    if status >= 500:
        return ProviderResult("retry", code=str(status))
    return ProviderResult("failed", code=str(status))


# Postmark's API error codes (https://postmarkapp.com/developer/api/overview#error-codes):
# 406 is an address it marked inactive (hard bounce, spam complaint, unsubscribe).
POSTMARK_INACTIVE_RECIPIENT = 406


@dataclass(frozen=True)
class OutgoingEmail:
    """One email as Postmark's POST /email takes it; `metadata` comes back in its webhooks."""

    to: str
    sender: str
    subject: str
    text: str
    stream: str
    headers: tuple[tuple[str, str], ...]
    metadata: dict[str, str]

    def body(self) -> dict[str, object]:
        return {
            "From": self.sender,
            "To": self.to,
            "Subject": self.subject,
            "TextBody": self.text,
            "MessageStream": self.stream,
            "Headers": [{"Name": name, "Value": value} for name, value in self.headers],
            "Metadata": self.metadata,
        }


def send_postmark_email(settings: Settings, email: OutgoingEmail) -> ProviderResult:
    """Postmark has no official Python SDK: its HTTP API over httpx (README "Dependencies")."""
    if settings.postmark_server_token is None or not email.sender:
        return ProviderResult("failed", code="not_configured")
    headers = {
        "Accept": "application/json",
        "X-Postmark-Server-Token": settings.postmark_server_token.get_secret_value(),
    }
    url = settings.postmark_api_base.rstrip("/") + "/email"
    try:
        with httpx.Client(
            timeout=settings.leadline_provider_timeout_seconds, trust_env=False
        ) as client:
            response = client.post(url, json=email.body(), headers=headers)
    except _HTTPX_NEVER_SENT as exc:
        return _transport_error("postmark", exc, never_sent=True)
    except httpx.HTTPError as exc:
        return _transport_error("postmark", exc, never_sent=False)
    return postmark_answer(response.status_code, _json_object(response))


def _json_object(response: httpx.Response) -> JsonObject:
    try:
        return as_object(response.json())
    except ValueError:
        return {}


def postmark_answer(status: int, data: JsonObject) -> ProviderResult:
    """What Postmark's answer means: accepted, an inactive recipient (suppressed like a STOP),
    a rate limit or outage (retried), or a refusal of this email (failed)."""
    error_code = data.get("ErrorCode")
    message_id = data.get("MessageID")
    if status == 200 and error_code == 0 and isinstance(message_id, str):
        return ProviderResult("sent", provider_sid=message_id[:64])
    label = f"postmark_{error_code}" if isinstance(error_code, int) else str(status)
    PROVIDER_ERRORS.labels(provider="postmark", code=label).inc()
    if error_code == POSTMARK_INACTIVE_RECIPIENT:
        return ProviderResult("blocked", code=label)
    if status == 429 or status >= 500:
        return ProviderResult("retry", code=label)
    return ProviderResult("failed", code=label)
