"""The provider sandbox's Postmark: the wire format of POST /email (leadline/sandbox.py serves it).

Postmark's shapes (https://postmarkapp.com/developer/api/email-api): a JSON body with From,
To, Subject, TextBody or HtmlBody, optional Headers [{"Name", "Value"}], MessageStream, Tag
and Metadata; the server token in X-Postmark-Server-Token; 200 {"To", "SubmittedAt",
"MessageID", "ErrorCode": 0, "Message": "OK"} on success, and errors as {"ErrorCode",
"Message"} with 401 (no or a wrong token, code 10), 422 (a refused email) or 429/5xx.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse

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


def postmark_record(payload: Mapping[str, Any]) -> dict[str, Any] | JSONResponse:
    """The /sent record of an email request, or Postmark's 422 for what it would refuse."""
    to, sender = payload.get("To"), payload.get("From")
    text, html = payload.get("TextBody"), payload.get("HtmlBody")
    if not isinstance(to, str) or not to.strip() or not isinstance(sender, str) or not sender:
        return postmark_error(300)
    if not isinstance(text, str | None) or not isinstance(html, str | None) or not (text or html):
        return postmark_error(300)
    headers = payload.get("Headers") or []
    if not isinstance(headers, list) or not all(_is_header(item) for item in headers):
        return postmark_error(300)
    metadata = payload.get("Metadata") or {}
    if not isinstance(metadata, dict):
        return postmark_error(300)
    return {
        "channel": "email",
        "to": to,
        "from": sender,
        "subject": payload.get("Subject") or "",
        "body": text or html,
        "headers": {item["Name"]: item["Value"] for item in headers},
        "message_stream": payload.get("MessageStream") or "outbound",
        "metadata": metadata,
        "message_id": str(uuid.uuid4()),
    }


def _is_header(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and isinstance(item.get("Name"), str)
        and isinstance(item.get("Value"), str)
    )


def postmark_accepted(record: Mapping[str, Any]) -> JSONResponse:
    return JSONResponse(
        {
            "To": record["to"],
            "SubmittedAt": record["time"],
            "MessageID": record["message_id"],
            "ErrorCode": 0,
            "Message": "OK",
        }
    )
