"""Counts refused inbound requests once, centrally, from the response status.

Sits outside the body cap so 413s are counted too. Only paths that carry inbound events are
counted, under their source name; the reason is derived from the status code, so every route
(present and future) is covered without counting anything itself. A route may name a finer
reason with `label_rejection` ("bad_signature" rather than "forbidden"); 2xx drops of
verified events the intake will not keep are counted by the route (intake.hooks.drop).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadline.metrics import EVENTS_REJECTED

SOURCE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("/hooks/twilio/sms", "twilio_sms"),
    ("/hooks/twilio/status", "twilio_status"),
    ("/hooks/stripe", "stripe"),
    ("/hooks/telegram/", "telegram"),
    ("/hooks/meta", "meta"),
    ("/hooks/postmark", "postmark"),
)
REASONS = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "unknown_target",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
}


def source_for_path(path: str, method: str = "POST") -> str | None:
    """The inbound source a request carries events of; None for every other request (the
    tenant API's reads and writes under /v1/leads/... are not inbound events)."""
    if path == "/v1/leads":
        return "api" if method == "POST" else None
    for prefix, source in SOURCE_PREFIXES:
        if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
            return source
    return None


def rejection_reason(status: int) -> str | None:
    if 400 <= status < 500:
        return REASONS.get(status, "client_error")
    return None


def label_rejection(request: Request, reason: str) -> None:
    """Name the reason of a refusal more precisely than its status code does."""
    request.state.rejection_reason = reason


class RejectionMetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        is_http = scope["type"] == "http"
        source = source_for_path(scope["path"], scope.get("method", "")) if is_http else None
        if source is None:
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                reason = rejection_reason(int(message["status"]))
                if reason is not None:
                    reason = scope.get("state", {}).get("rejection_reason", reason)
                    EVENTS_REJECTED.labels(source=source, reason=reason).inc()
            await send(message)

        await self.app(scope, receive, counting_send)
