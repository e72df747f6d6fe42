"""One error shape for the tenant API (every path under /v1): `{"error": code, "message":
text, "fields": [...] | null}`, plus `required_role` on a 403. Nothing submitted is echoed.

Routes raise ApiError (or answer `api_error`); ApiErrorShapeMiddleware turns every other error
answer on /v1 (the body cap's 413, the body timeout's 408, a 503 during an outage, a 500)
into the same shape, with a code named after its status.
"""

from __future__ import annotations

import json
from typing import TypedDict

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadline.errors import LeadlineError

API_PREFIX = "/v1/"
STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class FieldError(TypedDict):
    """One invalid part of a request: where, what is wrong, and its kind (never its value)."""

    loc: list[str]
    msg: str
    type: str


class ApiErrorBody(TypedDict):
    error: str
    message: str
    fields: list[FieldError] | None


def status_code_name(status: int) -> str:
    return STATUS_CODES.get(status, "client_error" if status < 500 else "server_error")


def api_error_body(
    status: int, message: str, code: str | None = None, fields: list[FieldError] | None = None
) -> ApiErrorBody:
    return {"error": code or status_code_name(status), "message": message, "fields": fields}


def api_error(
    status: int,
    message: str,
    code: str | None = None,
    fields: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    **extra: object,
) -> JSONResponse:
    body = {**api_error_body(status, message, code, fields), **extra}
    return JSONResponse(body, status_code=status, headers=headers)


class ApiError(LeadlineError):
    """Raised by a /v1 route or dependency; the app answers it with `api_error`."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        fields: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        **extra: object,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.fields, self.headers, self.extra = fields, headers, extra

    def response(self) -> JSONResponse:
        return api_error(
            self.status, self.message, self.code, self.fields, self.headers, **self.extra
        )


def not_found() -> ApiError:
    """Another organisation's id answers exactly like an id that never existed."""
    return ApiError(404, "not found")


class ApiErrorShapeMiddleware:
    """Reshapes error bodies on /v1 that are not in the API's shape yet (`{"error": text}`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def reshaping_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message
                return
            if start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                await send_reshaped(send, start, b"".join(chunks))

        await self.app(scope, receive, reshaping_send)


async def send_reshaped(send: Send, start: Message, body: bytes) -> None:
    status = int(start["status"])
    reshaped = reshape(status, body)
    headers = [
        (name, value)
        for name, value in start.get("headers", [])
        if name.lower() not in (b"content-length", b"content-type")
    ]
    headers += [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(reshaped)).encode()),
    ]
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": reshaped})


def reshape(status: int, body: bytes) -> bytes:
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        parsed = {}
    if isinstance(parsed, dict) and {"error", "message", "fields"} <= parsed.keys():
        return body
    text = parsed.get("error") if isinstance(parsed, dict) else None
    fields = parsed.get("fields") if isinstance(parsed, dict) else None
    message = text if isinstance(text, str) else status_code_name(status).replace("_", " ")
    shaped = api_error_body(status, message, fields=fields if isinstance(fields, list) else None)
    return json.dumps(shaped, separators=(",", ":")).encode()
