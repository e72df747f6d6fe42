"""The provider sandbox's Postmark: the wire format of POST /email (leadline/sandbox.py serves it).

Postmark's shapes (https://postmarkapp.com/developer/api/email-api): a JSON body with From,
To, Subject, TextBody or HtmlBody, optional Headers [{"Name", "Value"}], MessageStream, Tag
and Metadata; the server token in X-Postmark-Server-Token; 200 {"To", "SubmittedAt",
"MessageID", "ErrorCode": 0, "Message": "OK"} on success, and errors as {"ErrorCode",
"Message"} with 401 (no or a wrong token, code 10), 422 (a refused email) or 429/5xx.
"""

from __future__ import annotations

import uuid
from http import HTTPStatus
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse

from leadline.jsondata import JsonObject, as_object

if TYPE_CHECKING:
    from leadline.sandbox import SentMessage

POSTMARK_PATH = "/email"
POSTMARK_MESSAGES = {
    10: "The Server Token you provided in the X-Postmark-Server-Token request header was "
    "invalid. Please verify that you are using a valid token.",
    300: "Invalid email request",
    406: "You tried to send to recipient(s) that have been marked as inactive. Found inactive "
    "addresses: {to}. Inactive recipients are ones that have generated a hard bounce, a spam "
    "complaint, or a manual suppression.",
    412: "Your account is pending approval.",
}


def postmark_error(code: int, status: int = 422, to: str = "") -> JSONResponse:
    message = POSTMARK_MESSAGES.get(code, HTTPStatus(status).phrase).replace("{to}", to)
    return JSONResponse({"ErrorCode": code, "Message": message}, status_code=status)


def postmark_status_error(status: int) -> JSONResponse:
    """A scripted {"status": N}: Postmark's rate limit (429) or an outage (5xx)."""
    return JSONResponse(
        {"ErrorCode": 0 if status >= 500 else status, "Message": HTTPStatus(status).phrase},
        status_code=status,
    )


def postmark_record(payload: JsonObject) -> SentMessage | JSONResponse:
    """The /sent record of an email request, or Postmark's 422 for what it would refuse."""
    to, sender = payload.get("To"), payload.get("From")
    text, html = payload.get("TextBody"), payload.get("HtmlBody")
    if not isinstance(to, str) or not to.strip() or not isinstance(sender, str) or not sender:
        return postmark_error(300)
    body = text if isinstance(text, str) and text else html
    if not isinstance(body, str) or not body:
        return postmark_error(300)
    headers = _headers(payload.get("Headers"))
    metadata = payload.get("Metadata") or {}
    if headers is None or not isinstance(metadata, dict):
        return postmark_error(300)
    subject, stream = payload.get("Subject"), payload.get("MessageStream")
    record: SentMessage = {
        "channel": "email",
        "to": to,
        "from": sender,
        "subject": subject if isinstance(subject, str) else "",
        "body": body,
        "headers": headers,
        "message_stream": stream if isinstance(stream, str) and stream else "outbound",
        "metadata": {str(key): str(value) for key, value in metadata.items()},
        "message_id": str(uuid.uuid4()),
    }
    return record


def _headers(value: object) -> dict[str, str] | None:
    """Postmark's [{"Name", "Value"}] list as a mapping; None if it is not one."""
    if value is None:
        return {}
    if not isinstance(value, list):
        return None
    pairs = [as_object(item) for item in value]
    names, values = [pair.get("Name") for pair in pairs], [pair.get("Value") for pair in pairs]
    if not all(isinstance(item, str) for item in [*names, *values]):
        return None
    return {str(name): str(text) for name, text in zip(names, values, strict=True)}


def postmark_accepted(record: SentMessage) -> JSONResponse:
    return JSONResponse(
        {
            "To": record["to"],
            "SubmittedAt": record["time"],
            "MessageID": record["message_id"],
            "ErrorCode": 0,
            "Message": "OK",
        }
    )
