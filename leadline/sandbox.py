"""Provider sandbox: a local stand-in for Twilio's Messages API, Telegram's sendMessage and
Postmark's email API (and, in leadline/sandbox_graph.py, Meta's login dialog and Graph API).

Development (`leadline sandbox`, `make run`), demos and tests point the SMS and Telegram
clients at this server instead of the real providers. It speaks both wire formats closely
enough for the official `twilio` SDK, records what it accepted, and can be scripted to fail.

Endpoints
    POST   /2010-04-01/Accounts/{AccountSid}/Messages.json   Twilio: To, From or
           MessagingServiceSid, Body, optional StatusCallback (form). HTTP Basic auth with
           username == AccountSid; any password unless SandboxState(twilio_auth=(sid, token)).
    POST   /bot{token}/sendMessage     Telegram: chat_id, text (JSON, form or query string).
           Every token is accepted unless SandboxState(telegram_token=...).
    GET    /2010-04-01/Accounts/{AccountSid}/Messages.json   Twilio's message list: the SMS
           it accepted ("drop after" included), newest first, filtered by To, From,
           DateSent, DateSent<, DateSent> (YYYY-MM-DD, or an ISO-8601 instant; bounds are
           inclusive), paged with PageSize (default 50, at most 1000), Page and PageToken.
           Twilio's JSON shape: {"messages": [...], "page", "page_size", "start", "end",
           "uri", "first_page_uri", "next_page_uri", "previous_page_uri"}; status "sent",
           date_sent = the time it was accepted.
    POST   /email                      Postmark: From, To, Subject, TextBody or HtmlBody,
           Headers, MessageStream, Metadata (JSON; leadline/sandbox_postmark.py). Any
           X-Postmark-Server-Token unless SandboxState(postmark_token=...); none: 401.
    GET    /sent                       every accepted message, oldest first
    DELETE /sent                       forget messages, queued behaviours and counters
    GET    /stats                      {"requests": n, "accepted": n}
    POST   /behaviour                  queue scripted provider responses (below)

Records in /sent
    sms:      {"channel": "sms", "to", "from", "body", "time", "sid", "account_sid",
               "messaging_service_sid", "status_callback", "dropped_after", "request"}
    telegram: {"channel": "telegram", "to", "body", "time", "message_id",
               "dropped_after", "request"}
    "to" is always a string (Telegram chat ids included), "time" is ISO-8601 UTC and
    email:    {"channel": "email", "to", "from", "subject", "body", "headers" (name: value),
               "message_stream", "metadata", "message_id", "time", "dropped_after", "request"}
    "request" is the number of the raw request that delivered the message, so a test can
    tell one delivery of a message from two.

/stats counts every request that reached a provider endpoint ("requests", including
rejected and dropped ones) and the records in /sent ("accepted", "drop after" included).

Behaviour scripts
    POST /behaviour
    {"channel": "sms" | "telegram" | "email" | "any",   (default "any")
     "match_to": "+15551234567",               (optional: only requests to this recipient)
     "responses": [ ... ]}

    Each response is used up by one matching request. Scripts queue in the order they were
    posted and a request takes the next response of the first script that matches it; when
    nothing matches, the request succeeds. Auth and missing-field errors come first and use
    up nothing. The responses:

    {"status": 429}                     that HTTP error in the channel's own error shape
                                        (Twilio code 20000 + status, e.g. 20429, 20500)
    {"twilio_error": 21610}             Twilio error code, HTTP 400 (20429 -> 429,
                                        20003 -> 401, 20500 -> 500); channel "sms" only
    {"telegram_error": 429, "retry_after": 2}
                                        "Too Many Requests: retry after 2"; channel
    {"telegram_error": 403}             "Forbidden: bot was blocked by the user"; "telegram"
    {"telegram_error": 400}             "Bad Request: chat not found"; only
    {"postmark_error": 406}             Postmark ErrorCode, HTTP 422 (406: inactive
                                        recipient); channel "email" only
    {"delay": 1.5}                      wait that many seconds, then accept normally
    {"drop": "before"}                  close the connection unanswered; nothing recorded
    {"drop": "after"}                   record the message ("dropped_after": true), then close
                                        the connection unanswered: the provider got it but
                                        its answer was lost

    Errors and "drop before" record nothing. Python callers can use
    SandboxState.push_behaviour(responses, channel=..., match_to=...) instead.

Dropping a connection needs the outer ASGI layer that SandboxServer and serve_forever add
around create_sandbox_app(): it relies on uvicorn closing the socket without writing a
byte when an ASGI app returns something other than None (uvicorn logs an error line).
"""

from __future__ import annotations

import asyncio
import base64
import math
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import partial
from http import HTTPStatus
from types import TracebackType
from typing import Literal, Required, Self, TypedDict, TypeGuard
from urllib.parse import urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadline.jsondata import JsonObject
from leadline.sandbox_graph import GraphAccounts, graph_routes
from leadline.sandbox_postmark import (
    POSTMARK_PATH,
    postmark_accepted,
    postmark_error,
    postmark_record,
    postmark_status_error,
)

__all__ = ["SandboxServer", "SandboxState", "create_sandbox_app", "serve_forever"]

_HOST = "127.0.0.1"
_CHANNELS = ("sms", "telegram", "email", "any")
_HTTP_STATUSES = frozenset(status.value for status in HTTPStatus)
_TWILIO_PATH = "/2010-04-01/Accounts/{account_sid}/Messages.json"

_TWILIO_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    20503: "Service Unavailable",
    21211: "Invalid 'To' Phone Number",
    21408: "Permission to send an SMS has not been enabled for the region indicated by "
    "the 'To' number",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
}
_TWILIO_STATUS = {20003: 401, 20404: 404, 20429: 429, 20500: 500, 20503: 503}

_TELEGRAM_DESCRIPTIONS = {
    400: "Bad Request: chat not found",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
}

# GSM 03.38: the basic set costs one septet, the extension set two (escape + char).
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")

_DROP_MESSAGE = "leadline.sandbox.drop"
_DROPPED = "connection dropped on purpose by the provider sandbox"


# One message the sandbox accepted, as `/sent` lists it. Telegram messages have no SMS keys,
# emails have their own;
# from, messaging_service_sid and status_callback are None when the request left them out.
# The functional form because "from" is a keyword.
SentMessage = TypedDict(
    "SentMessage",
    {
        "channel": Required[str],
        "to": Required[str],
        "body": Required[str],
        "sid": str,
        "account_sid": str,
        "from": str | None,
        "messaging_service_sid": str | None,
        "status_callback": str | None,
        # Added when the message is recorded.
        "time": str,
        "dropped_after": bool,
        "request": int,
        # Telegram's message id (a number); Postmark's MessageID (a UUID string).
        "message_id": int | str,
        # Email only (leadline/sandbox_postmark.py).
        "subject": str,
        "headers": dict[str, str],
        "message_stream": str,
        "metadata": dict[str, str],
    },
    total=False,
)

_ErrorKind = Literal["status", "twilio_error", "telegram_error", "postmark_error"]


@dataclass(frozen=True)
class _ScriptedError:
    """An HTTP status in the channel's error shape, a Twilio error code or a Telegram status."""

    kind: _ErrorKind
    code: int
    retry_after: int = 1


@dataclass(frozen=True)
class _ScriptedDelay:
    seconds: float


@dataclass(frozen=True)
class _ScriptedDrop:
    after: bool


_Scripted = _ScriptedError | _ScriptedDelay | _ScriptedDrop


@dataclass
class _Script:
    channel: str
    match_to: str | None
    responses: deque[_Scripted]

    def matches(self, channel: str, to: str) -> bool:
        return self.channel in ("any", channel) and self.match_to in (None, to)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_error_status(value: object) -> TypeGuard[int]:
    return _is_int(value) and 400 <= value < 600 and value in _HTTP_STATUSES


def _is_delay(value: object) -> TypeGuard[float]:
    return (_is_int(value) or isinstance(value, float)) and value >= 0


_Parser = Callable[[object], _Scripted | None]


def _error(kind: _ErrorKind, valid: Callable[[object], TypeGuard[int]]) -> _Parser:
    return lambda value: _ScriptedError(kind, value) if valid(value) else None


# Each kind's parser: the scripted response for a valid value, None for an invalid one.
_PARSERS: dict[str, _Parser] = {
    "status": _error("status", _is_error_status),
    "twilio_error": _error("twilio_error", _is_int),
    "telegram_error": _error("telegram_error", _is_error_status),
    "postmark_error": _error("postmark_error", _is_int),
    "delay": lambda value: _ScriptedDelay(value) if _is_delay(value) else None,
    "drop": lambda value: _ScriptedDrop(value == "after") if value in ("before", "after") else None,
}
_CHANNEL_ONLY = {"twilio_error": "sms", "telegram_error": "telegram", "postmark_error": "email"}
_NOT_A_LIST = "responses must be a non-empty list"


def _parse_response(channel: str, response: object) -> _Scripted:
    if not isinstance(response, Mapping):
        raise ValueError(f"a response must be an object, got {response!r}")
    kinds = _PARSERS.keys() & response.keys()
    if len(kinds) != 1:
        raise ValueError(f"a response needs exactly one of {sorted(_PARSERS)}: {response!r}")
    kind = kinds.pop()
    allowed = {kind, "retry_after"} if kind == "telegram_error" else {kind}
    if response.keys() - allowed:
        raise ValueError(f"unknown keys in response {response!r}")
    scripted = _PARSERS[kind](response[kind])
    if scripted is None:
        raise ValueError(f"invalid value in response {response!r}")
    if _CHANNEL_ONLY.get(kind, channel) != channel:
        raise ValueError(f"{kind} needs channel {_CHANNEL_ONLY[kind]!r}, not {channel!r}")
    retry_after = response.get("retry_after", 1)
    if not _is_int(retry_after) or retry_after < 0:
        raise ValueError(f"retry_after must be a non-negative integer: {response!r}")
    if isinstance(scripted, _ScriptedError):
        return replace(scripted, retry_after=retry_after)
    return scripted


class SandboxState:
    """What the sandbox accepted and what it is scripted to do next.

    Shared between the server thread and tests, so every access holds the lock.
    """

    def __init__(
        self,
        twilio_auth: tuple[str, str] | None = None,
        telegram_token: str | None = None,
        meta_app: tuple[str, str] | None = None,
        postmark_token: str | None = None,
    ) -> None:
        self.twilio_auth = twilio_auth
        self.telegram_token = telegram_token
        self.graph = GraphAccounts(*(meta_app or (None, None)))
        self.postmark_token = postmark_token
        self._lock = threading.Lock()
        self._sent: list[SentMessage] = []
        self._scripts: list[_Script] = []
        self._requests = 0
        # Never reset: real Telegram does not reuse message ids.
        self._next_message_id = 1

    def sent(self) -> list[SentMessage]:
        with self._lock:
            return [record.copy() for record in self._sent]

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"requests": self._requests, "accepted": len(self._sent)}

    def clear(self) -> None:
        with self._lock:
            self._sent.clear()
            self._scripts.clear()
            self._requests = 0
        self.graph.reset()

    def push_behaviour(
        self,
        responses: Sequence[Mapping[str, object]],
        *,
        channel: str = "any",
        match_to: str | int | None = None,
    ) -> None:
        """Queue scripted responses (format in the module docstring); ValueError if invalid."""
        if channel not in _CHANNELS:
            raise ValueError(f"channel must be one of {_CHANNELS}, not {channel!r}")
        if isinstance(responses, str) or not isinstance(responses, Sequence) or not responses:
            raise ValueError(_NOT_A_LIST)
        queued = deque(_parse_response(channel, response) for response in responses)
        script = _Script(channel, None if match_to is None else str(match_to), queued)
        with self._lock:
            self._scripts.append(script)

    def _count_request(self) -> int:
        with self._lock:
            self._requests += 1
            return self._requests

    def _take(self, channel: str, to: str) -> _Scripted | None:
        with self._lock:
            for script in self._scripts:
                if script.matches(channel, to):
                    scripted = script.responses.popleft()
                    if not script.responses:
                        self._scripts.remove(script)
                    return scripted
        return None

    def _record(
        self, record: SentMessage, request_number: int, *, dropped_after: bool = False
    ) -> SentMessage:
        stored = record.copy()
        stored["time"] = datetime.now(UTC).isoformat()
        stored["dropped_after"] = dropped_after
        stored["request"] = request_number
        with self._lock:
            if stored["channel"] == "telegram":
                stored["message_id"] = self._next_message_id
                self._next_message_id += 1
            self._sent.append(stored)
        return stored.copy()


def _num_segments(body: str) -> int:
    if all(char in _GSM7_BASIC or char in _GSM7_EXTENDED for char in body):
        single, per_part = 160, 153
        length = sum(2 if char in _GSM7_EXTENDED else 1 for char in body)
    else:
        # UCS-2 counts UTF-16 code units, so an emoji takes two.
        single, per_part = 70, 67
        length = len(body.encode("utf-16-le")) // 2
    return 1 if length <= single else math.ceil(length / per_part)


def _twilio_error(code: int, status: int | None = None) -> JSONResponse:
    status = status or _TWILIO_STATUS.get(code, 400)
    body = {
        "code": code,
        "message": _TWILIO_MESSAGES.get(code, HTTPStatus(status).phrase),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _twilio_message(account_sid: str, record: SentMessage) -> JSONResponse:
    return JSONResponse(_twilio_body(account_sid, record), status_code=201)


def _twilio_body(account_sid: str, record: SentMessage) -> JsonObject:
    uri = f"/2010-04-01/Accounts/{account_sid}/Messages/{record['sid']}.json"
    created = format_datetime(datetime.fromisoformat(record["time"]))
    body: JsonObject = {
        "account_sid": account_sid,
        "api_version": "2010-04-01",
        "body": record["body"],
        "date_created": created,
        "date_sent": None,
        "date_updated": created,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": record["from"],
        "messaging_service_sid": record["messaging_service_sid"],
        "num_media": "0",
        "num_segments": str(_num_segments(record["body"])),
        "price": None,
        "price_unit": "USD",
        "sid": record["sid"],
        # Twilio answers "accepted" while a Messaging Service still has to pick a sender.
        "status": "queued" if record["from"] else "accepted",
        "subresource_uris": {"media": uri.removesuffix(".json") + "/Media.json"},
        "to": record["to"],
        "uri": uri,
    }
    return body


@dataclass(frozen=True)
class _MessageQuery:
    """The filters and page of a Twilio message list request."""

    to: str | None
    sender: str | None
    sent_on: str | None
    sent_after: str | None
    sent_before: str | None
    page: int
    page_size: int

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> _MessageQuery:
        bounds = {key: params.get(key) for key in ("DateSent", "DateSent>", "DateSent<")}
        for value in bounds.values():
            if value is not None:
                _instant(value)  # ValueError for anything Twilio would refuse
        page_size = int(params.get("PageSize", "50"))
        page = int(params.get("Page", "0"))
        if not 1 <= page_size <= 1000 or page < 0:
            raise ValueError("bad page")
        return cls(
            params.get("To"),
            params.get("From"),
            bounds["DateSent"],
            bounds["DateSent>"],
            bounds["DateSent<"],
            page,
            page_size,
        )

    def matches(self, record: SentMessage) -> bool:
        sent = datetime.fromisoformat(record["time"])
        return (
            self.to in (None, record["to"])
            and self.sender in (None, record["from"])
            and (self.sent_on is None or sent.date() == _instant(self.sent_on).date())
            and (self.sent_after is None or _on_or_after(sent, self.sent_after))
            and (self.sent_before is None or _on_or_before(sent, self.sent_before))
        )

    def params(self, page: int) -> str:
        fields = {
            "To": self.to,
            "From": self.sender,
            "DateSent": self.sent_on,
            "DateSent>": self.sent_after,
            "DateSent<": self.sent_before,
        }
        kept = [(key, value) for key, value in fields.items() if value is not None]
        kept += [("PageSize", str(self.page_size)), ("Page", str(page))]
        if page > 0:
            kept.append(("PageToken", f"PA{page}"))
        return urlencode(kept)


def _instant(value: str) -> datetime:
    """YYYY-MM-DD (midnight UTC) or an ISO-8601 instant; naive means UTC."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _on_or_after(moment: datetime, bound: str) -> bool:
    if len(bound) == 10:  # a bare date: the whole day counts
        return moment.date() >= _instant(bound).date()
    return moment >= _instant(bound)


def _on_or_before(moment: datetime, bound: str) -> bool:
    if len(bound) == 10:
        return moment.date() <= _instant(bound).date()
    return moment <= _instant(bound)


def _twilio_page(account_sid: str, query: _MessageQuery, records: list[SentMessage]) -> JsonObject:
    path = _TWILIO_PATH.format(account_sid=account_sid)
    start = query.page * query.page_size
    chunk = records[start : start + query.page_size]
    more = start + query.page_size < len(records)
    return {
        "messages": [_twilio_listed(account_sid, record) for record in chunk],
        "page": query.page,
        "page_size": query.page_size,
        "start": start,
        "end": start + max(len(chunk) - 1, 0),
        "uri": f"{path}?{query.params(query.page)}",
        "first_page_uri": f"{path}?{query.params(0)}",
        "next_page_uri": f"{path}?{query.params(query.page + 1)}" if more else None,
        "previous_page_uri": f"{path}?{query.params(query.page - 1)}" if query.page else None,
    }


def _twilio_listed(account_sid: str, record: SentMessage) -> JsonObject:
    body = _twilio_body(account_sid, record)
    body.update(status="sent", date_sent=body["date_created"])
    return body


def _twilio_missing_field(fields: Mapping[str, str]) -> int | None:
    if not fields.get("To"):
        return 21604
    if not (fields.get("From") or fields.get("MessagingServiceSid")):
        return 21603
    if not fields.get("Body"):
        return 21602
    return None


def _telegram_error(
    code: int, retry_after: int = 1, description: str | None = None
) -> JSONResponse:
    if description is None and code == 429:
        description = f"Too Many Requests: retry after {retry_after}"
    if description is None:
        description = _TELEGRAM_DESCRIPTIONS.get(code, HTTPStatus(code).phrase)
    body: JsonObject = {"ok": False, "error_code": code, "description": description}
    if code == 429:
        body["parameters"] = {"retry_after": retry_after}
    return JSONResponse(body, status_code=code)


def _telegram_message(chat_id: int | str, record: SentMessage) -> JSONResponse:
    result = {
        "message_id": record["message_id"],
        "date": int(datetime.fromisoformat(record["time"]).timestamp()),
        "chat": {"id": chat_id, "type": "private"},
        "text": record["body"],
    }
    return JSONResponse({"ok": True, "result": result})


def _chat_id(value: object) -> int | str | None:
    if value is None or value == "":
        return None
    if _is_int(value):
        return int(value)
    text = str(value)
    return int(text) if text.removeprefix("-").isdigit() else text


def _scripted_error(channel: str, scripted: _ScriptedError) -> JSONResponse:
    if scripted.kind == "twilio_error":
        return _twilio_error(scripted.code)
    if scripted.kind == "telegram_error":
        return _telegram_error(scripted.code, scripted.retry_after)
    if scripted.kind == "postmark_error":
        return postmark_error(scripted.code)
    if channel == "email":
        return postmark_status_error(scripted.code)
    if channel == "sms":
        return _twilio_error(20000 + scripted.code, scripted.code)
    return _telegram_error(scripted.code, scripted.retry_after)


def _basic_auth(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except ValueError:
        return None
    username, colon, password = decoded.partition(":")
    return (username, password) if colon else None


async def _form_fields(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def _telegram_fields(request: Request) -> JsonObject:
    fields: JsonObject = dict(request.query_params)
    if not request.headers.get("content-type", "").startswith("application/json"):
        fields.update(await _form_fields(request))
        return fields
    try:
        payload = await request.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        fields.update(payload)
    return fields


class _DropConnection(Response):
    """Asks _ConnectionDropper to close the socket instead of answering."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": _DROP_MESSAGE})


class _Handlers:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def twilio_message(self, request: Request) -> Response:
        request_number = self.state._count_request()
        account_sid = request.path_params["account_sid"]
        if not self._twilio_authorized(request, account_sid):
            return _twilio_error(20003)
        fields = await _form_fields(request)
        missing = _twilio_missing_field(fields)
        if missing is not None:
            return _twilio_error(missing)
        record: SentMessage = {
            "channel": "sms",
            "to": fields["To"],
            "from": fields.get("From"),
            "body": fields["Body"],
            "sid": "SM" + uuid.uuid4().hex,
            "account_sid": account_sid,
            "messaging_service_sid": fields.get("MessagingServiceSid"),
            "status_callback": fields.get("StatusCallback"),
        }
        return await self._answer(record, request_number, partial(_twilio_message, account_sid))

    async def twilio_list(self, request: Request) -> Response:
        account_sid = request.path_params["account_sid"]
        if not self._twilio_authorized(request, account_sid):
            return _twilio_error(20003)
        try:
            query = _MessageQuery.parse(request.query_params)
        except ValueError:
            return _twilio_error(20001, 400)
        records = [
            r
            for r in reversed(self.state.sent())
            if r["channel"] == "sms" and r["account_sid"] == account_sid and query.matches(r)
        ]
        return JSONResponse(_twilio_page(account_sid, query, records))

    async def telegram_message(self, request: Request) -> Response:
        request_number = self.state._count_request()
        if self.state.telegram_token not in (None, request.path_params["token"]):
            return _telegram_error(401)
        fields = await _telegram_fields(request)
        chat_id = _chat_id(fields.get("chat_id"))
        if chat_id is None:
            return _telegram_error(400, description="Bad Request: chat_id is empty")
        if not fields.get("text"):
            return _telegram_error(400, description="Bad Request: message text is empty")
        record: SentMessage = {
            "channel": "telegram",
            "to": str(chat_id),
            "body": str(fields["text"]),
        }
        return await self._answer(record, request_number, partial(_telegram_message, chat_id))

    async def postmark_email(self, request: Request) -> Response:
        request_number = self.state._count_request()
        token = request.headers.get("x-postmark-server-token")
        if not token or self.state.postmark_token not in (None, token):
            return postmark_error(10, 401)
        try:
            payload = await request.json()
        except ValueError:
            payload = None
        record = postmark_record(payload if isinstance(payload, dict) else {})
        if isinstance(record, Response):
            return record
        return await self._answer(record, request_number, postmark_accepted)

    async def sent(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.state.clear()
            return Response(status_code=204)
        return JSONResponse(self.state.sent())

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.state.stats())

    async def behaviour(self, request: Request) -> Response:
        try:
            payload = await request.json()
            if not isinstance(payload, dict):
                raise ValueError("expected a JSON object")
            responses = payload.get("responses")
            if not isinstance(responses, list):
                raise ValueError(_NOT_A_LIST)
            self.state.push_behaviour(
                responses,
                channel=payload.get("channel", "any"),
                match_to=payload.get("match_to"),
            )
        except ValueError as exc:
            return JSONResponse({"error": f"invalid behaviour: {exc}"}, status_code=400)
        return JSONResponse({"queued": len(responses)}, status_code=201)

    def _twilio_authorized(self, request: Request, account_sid: str) -> bool:
        credentials = _basic_auth(request)
        if credentials is None or credentials[0] != account_sid:
            return False
        return self.state.twilio_auth in (None, credentials)

    async def _answer(
        self,
        record: SentMessage,
        request_number: int,
        render: Callable[[SentMessage], Response],
    ) -> Response:
        scripted = self.state._take(record["channel"], record["to"])
        if scripted is None or isinstance(scripted, _ScriptedDelay):
            if scripted is not None:
                await asyncio.sleep(scripted.seconds)
            return render(self.state._record(record, request_number))
        if isinstance(scripted, _ScriptedDrop):
            if scripted.after:
                self.state._record(record, request_number, dropped_after=True)
            return _DropConnection()
        return _scripted_error(record["channel"], scripted)


def create_sandbox_app(state: SandboxState | None = None) -> Starlette:
    """The sandbox as a Starlette app; its state is also reachable as app.state.sandbox."""
    state = state if state is not None else SandboxState()
    handlers = _Handlers(state)
    app = Starlette(
        routes=[
            Route(_TWILIO_PATH, handlers.twilio_message, methods=["POST"]),
            Route(_TWILIO_PATH, handlers.twilio_list, methods=["GET"]),
            Route("/bot{token}/sendMessage", handlers.telegram_message, methods=["POST"]),
            Route(POSTMARK_PATH, handlers.postmark_email, methods=["POST"]),
            Route("/sent", handlers.sent, methods=["GET", "DELETE"]),
            Route("/stats", handlers.stats, methods=["GET"]),
            Route("/behaviour", handlers.behaviour, methods=["POST"]),
            *graph_routes(state),
        ]
    )
    app.state.sandbox = state
    return app


class _ConnectionDropper:
    """Outermost ASGI layer: turns a _DropConnection into a socket closed without a reply."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> str | None:
        dropped = False

        async def send_unless_dropped(message: Message) -> None:
            nonlocal dropped
            if message["type"] == _DROP_MESSAGE:
                dropped = True
            else:
                await send(message)

        await self.app(scope, receive, send_unless_dropped)
        # ASGI has no way to abort a response that has not started; uvicorn closes the
        # transport without writing anything when the app returns a value other than None.
        return _DROPPED if dropped else None


def _uvicorn_config(state: SandboxState, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        _ConnectionDropper(create_sandbox_app(state)),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        # Proxy headers would only matter behind a proxy, and its middleware must not sit
        # between uvicorn and _ConnectionDropper's return value.
        proxy_headers=False,
        timeout_graceful_shutdown=2,
    )


def _listening_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((_HOST, port))
    except OSError:
        sock.close()
        raise
    return sock


class SandboxServer:
    """Runs the sandbox with uvicorn in a background thread on 127.0.0.1.

    Port 0 picks a free port. Binding happens in start(), in the caller's thread, so a busy
    port raises OSError there instead of dying quietly inside the server thread.
    """

    def __init__(self, state: SandboxState | None = None, port: int = 0) -> None:
        self.state = state if state is not None else SandboxState()
        self._requested_port = port
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the provider sandbox is not running")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{_HOST}:{self.port}"

    def start(self, timeout: float = 10.0) -> Self:
        if self._server is not None:
            raise RuntimeError("the provider sandbox is already running")
        sock = _listening_socket(self._requested_port)
        self._port = int(sock.getsockname()[1])
        self._server = uvicorn.Server(_uvicorn_config(self.state, _HOST, self._port, "warning"))
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"provider-sandbox-{self._port}",
            daemon=True,
        )
        self._thread.start()
        try:
            self._wait_until_started(timeout)
        except BaseException:
            self.stop()
            sock.close()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = self._thread = None
        self._port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_until_started(self, timeout: float) -> None:
        assert self._server is not None and self._thread is not None
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the provider sandbox failed to start")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the provider sandbox did not start within {timeout}s")
            time.sleep(0.01)


def serve_forever(host: str = "127.0.0.1", port: int = 8025) -> None:
    """Run the sandbox in the foreground until interrupted (`leadline sandbox`)."""
    uvicorn.Server(_uvicorn_config(SandboxState(), host, port, "info")).run()
