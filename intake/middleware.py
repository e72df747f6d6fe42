"""Protections as plain ASGI middleware: security headers, request ids, a body-size cap, a
body read timeout, and the one place that decides a request's client address."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
import uuid
from collections.abc import Mapping, Sequence

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadline.logging import clear_context, get_logger

log = get_logger("leadline.intake")

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]
REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._-]{8,64}$")


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP response, errors included."""

    def __init__(self, app: ASGIApp, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        self.app = app
        self.headers = SECURITY_HEADERS + (extra or [])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in self.headers if n not in names]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestIdMiddleware:
    """Accepts a well-formed X-Request-ID or makes one; echoes it and binds it to logs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        clear_context()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER, request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            clear_context()


def incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER and _VALID_REQUEST_ID.match(value):
            return str(value.decode())
    return None


class BodyTooLarge(Exception):
    """Raised inside receive() when the body passes the cap."""


class BodyLimitMiddleware:
    """Answers 413 for bodies over `max_bytes`, by Content-Length or by counting the stream;
    the paths in `larger` (a CSV upload) have their own cap."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, larger: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.larger.get(scope["path"], self.max_bytes)
        if declared_length(scope) > max_bytes:
            await send_json_error(send, 413, "request body too large")
            return
        received = 0

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise BodyTooLarge
            return message

        await answer_unless_started(
            self.app, scope, capped_receive, send, BodyTooLarge, 413, "request body too large"
        )


async def answer_unless_started(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    error: type[Exception],
    status: int,
    message: str,
    close: bool = False,
) -> None:
    """Run the app; when `error` escapes it before the response started, answer `status`."""
    response_started = False

    async def tracking_send(event: Message) -> None:
        nonlocal response_started
        response_started = response_started or event["type"] == "http.response.start"
        await send(event)

    try:
        await app(scope, receive, tracking_send)
    except error:
        if not response_started:
            await send_json_error(send, status, message, close=close)


def declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


async def send_json_error(send: Send, status: int, message: str, close: bool = False) -> None:
    body = b'{"error":"' + message.encode() + b'"}'
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyTimeout(Exception):
    """Raised inside receive() when the next part of the body does not arrive in time."""


class BodyTimeoutMiddleware:
    """Answers 408 when the request body has not all arrived `seconds` after the app first
    asked for it, so a client dribbling its body cannot hold a connection (and a server
    slot) open for long. The deadline covers the whole body, not each part of it."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline: float | None = None
        body_complete = False

        async def timed_receive() -> Message:
            # Only the body is timed: a later receive() waits for a disconnect, legitimately.
            nonlocal deadline, body_complete
            if body_complete:
                return await receive()
            loop = asyncio.get_running_loop()
            deadline = deadline or loop.time() + self.seconds
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise BodyTimeout from None
            body_complete = message["type"] != "http.request" or not message.get("more_body")
            return message

        await answer_unless_started(
            self.app,
            scope,
            timed_receive,
            send,
            BodyTimeout,
            408,
            "request body timed out",
            close=True,
        )


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ClientAddressMiddleware:
    """Sets the request's client address, the one the limiter and the logs use.

    X-Forwarded-For hops are believed only as far as they were appended by a trusted proxy:
    the client is the rightmost address of (X-Forwarded-For hops..., peer) that is not in a
    trusted network. With no trusted networks that is always the peer, whatever the header
    says, so a spoofed header can neither dodge a lockout nor lock out somebody else.
    """

    def __init__(self, app: ASGIApp, trusted: Sequence[IPNetwork]) -> None:
        self.app = app
        self.trusted = tuple(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.trusted and scope.get("client"):
            host, port = scope["client"]
            client = resolve_client(host, forwarded_for(scope), self.trusted)
            scope["client"] = (client, port if client == host else 0)
        await self.app(scope, receive, send)


def forwarded_for(scope: Scope) -> list[str]:
    """Every X-Forwarded-For hop in order (several headers are one list, joined in order)."""
    hops: list[str] = []
    for name, value in scope.get("headers", []):
        if name == b"x-forwarded-for":
            hops.extend(hop.strip() for hop in value.decode("latin-1").split(","))
    return hops


def resolve_client(peer: str, hops: Sequence[str], trusted: Sequence[IPNetwork]) -> str:
    """The rightmost hop of `hops + [peer]` not in a trusted network (the leftmost if all are).

    A hop that is not an address stops the walk: a trusted proxy vouched for it, but it names
    nobody, so the proxy that appended it (the hop to its right) is the client."""
    chain = [*hops, peer]
    for index in range(len(chain) - 1, -1, -1):
        address = parse_address(chain[index])
        if address is None:
            return chain[index + 1] if index + 1 < len(chain) else peer
        if not any(address in network for network in trusted):
            return str(address)
    return str(parse_address(chain[0]) or peer)


def parse_address(hop: str) -> IPAddress | None:
    """An address, without a port (`1.2.3.4:5`, `[::1]:5`); IPv4-mapped IPv6 as IPv4."""
    text = hop.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
