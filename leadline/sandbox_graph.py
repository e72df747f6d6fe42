"""The provider sandbox's stand-in for Meta: the login dialog and the Graph API endpoints
Leadline uses to connect Instagram, Messenger and WhatsApp by OAuth and to send on them.

One sandbox user consents to everything. It has one Facebook page with a linked Instagram
account (GraphAccounts.add_page adds more), and one business with one WhatsApp business
account and one phone number; their ids are random, drawn again by `DELETE /sent`
(SandboxState.clear), so every test connects accounts nobody else has. Lists are paged by
cursor, `GraphAccounts.page_size` (25) items at most, with a `paging.next` URL when more
follow.

Endpoints (META_OAUTH_BASE and META_GRAPH_BASE both point at the sandbox's root)
    GET    /dialog/oauth        client_id, redirect_uri, scope, state, response_type=code:
                                the user consents at once; 302 to redirect_uri?code=…&state=…
    POST   /oauth/access_token  (form or query) client_id, client_secret, redirect_uri, code →
                                a user token; or grant_type=fb_exchange_token,
                                fb_exchange_token → a long-lived one. A code works once.
    GET    /me                  {"id", "name"} of the token's user
    GET    /me/accounts         the user's pages with page tokens and their
                                instagram_business_account {id, username}
    GET    /me/businesses, /{business-id}/owned_whatsapp_business_accounts,
           /{waba-id}/phone_numbers       {"data": [...]}
    POST   /{page-id}/messages, /{instagram-id}/messages (page token; Messenger Send API
           body), /{phone-number-id}/messages (user token; WhatsApp Cloud API body):
           recorded in /sent with channel messenger, instagram or whatsapp
    DELETE /{user-id}/permissions   revoke the grant: every token of that user stops working
    GET    /graph/revocations   [{"user_id", "time"}] of every revocation received

Tokens go in `Authorization: Bearer …` or an `access_token` parameter. An unknown, revoked or
wrong token is Graph's 190 OAuthException (HTTP 401), as Meta answers.
Records in /sent: {"channel", "to", "from" (the page, Instagram or phone number id), "body",
"sid" (the Graph message id), "time", "request", "dropped_after": false}.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from leadline.jsondata import JsonObject, as_object

if TYPE_CHECKING:
    from leadline.sandbox import SandboxState, SentMessage

INVALID_TOKEN = 190
INVALID_PARAMETER = 100


def _meta_id() -> str:
    return str(secrets.randbelow(9 * 10**15) + 10**15)


@dataclass(frozen=True)
class SandboxPage:
    page_id: str = field(default_factory=_meta_id)
    instagram_id: str = field(default_factory=_meta_id)


@dataclass
class _Assets:
    user_id: str = field(default_factory=_meta_id)
    pages: list[SandboxPage] = field(default_factory=lambda: [SandboxPage()])
    business_id: str = field(default_factory=_meta_id)
    waba_id: str = field(default_factory=_meta_id)
    phone_number_id: str = field(default_factory=_meta_id)

    @property
    def page_id(self) -> str:
        return self.pages[0].page_id

    @property
    def instagram_id(self) -> str:
        return self.pages[0].instagram_id

    def page(self, node: str) -> SandboxPage | None:
        """The page whose id, or whose Instagram account's id, `node` is."""
        return next((p for p in self.pages if node in (p.page_id, p.instagram_id)), None)


@dataclass(frozen=True)
class _Token:
    user_id: str
    page_id: str | None = None  # a page token; None: the user's own


class GraphAccounts:
    """The sandbox user's assets, codes and tokens. Every access holds the lock."""

    def __init__(self, app_id: str | None = None, app_secret: str | None = None) -> None:
        self.app_id, self.app_secret = app_id, app_secret
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.assets = _Assets()
            # Meta pages its lists (25 items by default); tests make this small to see paging.
            self.page_size = 25
            self._codes: dict[str, tuple[str, str]] = {}  # code -> (redirect_uri, user id)
            self._tokens: dict[str, _Token] = {}
            self._issued: list[str] = []
            self._revocations: list[dict[str, str]] = []

    def issue_code(self, redirect_uri: str) -> str:
        code = "AQ" + secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = (redirect_uri, self.assets.user_id)
        return code

    def redeem_code(self, code: str, redirect_uri: str) -> str | None:
        with self._lock:
            issued = self._codes.pop(code, None)
        if issued is None or issued[0] != redirect_uri:
            return None
        return self.issue_token(_Token(issued[1]))

    def issue_token(self, token: _Token) -> str:
        value = "EAA" + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[value] = token
            self._issued.append(value)
        return value

    def issued_tokens(self) -> list[str]:
        """Every token handed out since the last reset, revoked ones included."""
        with self._lock:
            return list(self._issued)

    def token(self, value: str | None) -> _Token | None:
        with self._lock:
            return self._tokens.get(value) if value else None

    def add_page(self) -> SandboxPage:
        """Another page (with its own Instagram account) the sandbox user manages."""
        page = SandboxPage()
        with self._lock:
            self.assets.pages.append(page)
        return page

    def page_token(self, user_token: _Token, page_id: str) -> str:
        return self.issue_token(_Token(user_token.user_id, page_id))

    def revoke(self, user_id: str) -> None:
        with self._lock:
            self._tokens = {k: t for k, t in self._tokens.items() if t.user_id != user_id}
            self._revocations.append({"user_id": user_id, "time": datetime.now(UTC).isoformat()})

    def revocations(self) -> list[dict[str, str]]:
        with self._lock:
            return [dict(entry) for entry in self._revocations]

    def app_accepted(self, client_id: str | None, client_secret: str | None) -> bool:
        if not client_id:
            return False
        if self.app_id is not None and client_id != self.app_id:
            return False
        return self.app_secret is None or client_secret == self.app_secret


def graph_error(code: int, message: str, status: int = 400) -> JSONResponse:
    body = {
        "error": {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "fbtrace_id": "A" + secrets.token_hex(8),
        }
    }
    return JSONResponse(body, status_code=status)


def invalid_token() -> JSONResponse:
    return graph_error(INVALID_TOKEN, "Error validating access token: the session is invalid.", 401)


async def _params(request: Request) -> dict[str, str]:
    fields = dict(request.query_params)
    if request.method == "POST" and not request.headers.get("content-type", "").startswith(
        "application/json"
    ):
        form = await request.form()
        fields.update({k: v for k, v in form.items() if isinstance(v, str)})
    return fields


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        return value
    return request.query_params.get("access_token")


class _GraphHandlers:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.graph = state.graph

    def _user(self, request: Request) -> _Token | None:
        token = self.graph.token(_bearer(request))
        return token if token is not None and token.page_id is None else None

    async def dialog(self, request: Request) -> Response:
        params = request.query_params
        redirect_uri, state = params.get("redirect_uri", ""), params.get("state")
        if not self.graph.app_accepted(params.get("client_id"), None):
            return graph_error(INVALID_PARAMETER, "Invalid App ID")
        if urlsplit(redirect_uri).scheme not in ("http", "https") or not state:
            return graph_error(INVALID_PARAMETER, "redirect_uri and state are required")
        if params.get("response_type", "code") != "code":
            return graph_error(INVALID_PARAMETER, "response_type must be code")
        query = urlencode({"code": self.graph.issue_code(redirect_uri), "state": state})
        return RedirectResponse(f"{redirect_uri}?{query}", status_code=302)

    async def access_token(self, request: Request) -> Response:
        fields = await _params(request)
        if not self.graph.app_accepted(fields.get("client_id"), fields.get("client_secret")):
            return graph_error(INVALID_PARAMETER, "Error validating client secret.")
        if fields.get("grant_type") == "fb_exchange_token":
            user = self.graph.token(fields.get("fb_exchange_token"))
            if user is None or user.page_id is not None:
                return invalid_token()
            return self._token_answer(self.graph.issue_token(user), 60 * 86_400)
        token = self.graph.redeem_code(fields.get("code", ""), fields.get("redirect_uri", ""))
        if token is None:
            return graph_error(INVALID_PARAMETER, "This authorization code has been used.")
        return self._token_answer(token, 3600)

    @staticmethod
    def _token_answer(token: str, expires_in: int) -> Response:
        return JSONResponse(
            {"access_token": token, "token_type": "bearer", "expires_in": expires_in}
        )

    async def me(self, request: Request) -> Response:
        user = self._user(request)
        if user is None:
            return invalid_token()
        return JSONResponse({"id": user.user_id, "name": "Sandbox User"})

    async def accounts(self, request: Request) -> Response:
        user = self._user(request)
        if user is None:
            return invalid_token()
        pages: list[JsonObject] = [
            {
                "id": page.page_id,
                "name": f"Sandbox Page {number}",
                "access_token": self.graph.page_token(user, page.page_id),
                "category": "Local business",
                "tasks": ["MESSAGING", "MODERATE", "ADVERTISE", "CREATE_CONTENT", "MANAGE"],
                "instagram_business_account": {
                    "id": page.instagram_id,
                    "username": f"sandbox{number}",
                },
            }
            for number, page in enumerate(self.graph.assets.pages, start=1)
        ]
        return JSONResponse(self._paged(request, pages))

    def _paged(self, request: Request, items: list[JsonObject]) -> JsonObject:
        """Graph's cursor paging: `after` is an opaque cursor (here, an offset)."""
        try:
            limit = min(int(request.query_params.get("limit", "25")), self.graph.page_size)
            start = int(request.query_params.get("after", "0"))
        except ValueError:
            limit, start = self.graph.page_size, 0
        chunk, end = items[start : start + limit], start + limit
        paging: JsonObject = {"cursors": {"before": str(start), "after": str(end)}}
        if end < len(items):
            # Meta's next URL carries the access token: clients must not log it.
            paging["next"] = f"{request.url.path}?limit={limit}&after={end}&access_token=…"
        return {"data": chunk, "paging": paging}

    async def edge(self, request: Request) -> Response:
        """GET /{node}/{edge}: the business, WhatsApp account and phone number lists."""
        user = self._user(request)
        if user is None:
            return invalid_token()
        assets, node = self.graph.assets, request.path_params["node"]
        listed: Mapping[tuple[str, str], list[JsonObject]] = {
            ("me", "businesses"): [{"id": assets.business_id, "name": "Sandbox Business"}],
            (assets.business_id, "owned_whatsapp_business_accounts"): [
                {"id": assets.waba_id, "name": "Sandbox WhatsApp"}
            ],
            (assets.waba_id, "phone_numbers"): [
                {
                    "id": assets.phone_number_id,
                    "display_phone_number": "+1 555-010-0199",
                    "verified_name": "Sandbox Business",
                    "quality_rating": "GREEN",
                }
            ],
        }
        found = listed.get((node, request.path_params["edge"]))
        if found is None:
            return graph_error(INVALID_PARAMETER, "Unsupported get request.")
        return JSONResponse(self._paged(request, list(found)))

    async def messages(self, request: Request) -> Response:
        request_number = self.state._count_request()
        node, token = request.path_params["node"], self.graph.token(_bearer(request))
        channel = self._channel(node, token)
        if channel is None:
            return invalid_token()
        try:
            payload = await request.json()
        except ValueError:
            payload = None
        recipient, text = _message_fields(channel, as_object(payload))
        if not recipient or not text:
            return graph_error(INVALID_PARAMETER, "(#100) recipient and text are required")
        prefix = "wamid." if channel == "whatsapp" else "m_"
        record: SentMessage = {
            "channel": channel,
            "to": recipient,
            "from": node,
            "body": text,
            "sid": prefix + secrets.token_urlsafe(24),
        }
        sid = self.state._record(record, request_number)["sid"]
        if channel == "whatsapp":
            return JSONResponse(
                {
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": recipient, "wa_id": recipient}],
                    "messages": [{"id": sid}],
                }
            )
        return JSONResponse({"recipient_id": recipient, "message_id": sid})

    def _channel(self, node: str, token: _Token | None) -> str | None:
        """Which channel a send to `node` with `token` is; None when the token may not."""
        assets = self.graph.assets
        if token is None or token.user_id != assets.user_id:
            return None
        page = assets.page(node)
        if page is not None and token.page_id == page.page_id:
            return "messenger" if node == page.page_id else "instagram"
        if token.page_id is None and node == assets.phone_number_id:
            return "whatsapp"
        return None

    async def permissions(self, request: Request) -> Response:
        user = self._user(request)
        if user is None or user.user_id != request.path_params["node"]:
            return invalid_token()
        self.graph.revoke(user.user_id)
        return JSONResponse({"success": True})

    async def revocations(self, request: Request) -> Response:
        return JSONResponse(self.graph.revocations())


def _message_fields(channel: str, body: JsonObject) -> tuple[str | None, str | None]:
    if channel == "whatsapp":
        if body.get("messaging_product") != "whatsapp" or body.get("type", "text") != "text":
            return None, None
        return _text(body.get("to")), _text(as_object(body.get("text")).get("body"))
    recipient = as_object(body.get("recipient")).get("id")
    return _text(recipient), _text(as_object(body.get("message")).get("text"))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def graph_routes(state: SandboxState) -> list[Route]:
    handlers = _GraphHandlers(state)
    routes = [
        ("/dialog/oauth", handlers.dialog, ["GET"]),
        ("/oauth/access_token", handlers.access_token, ["GET", "POST"]),
        ("/graph/revocations", handlers.revocations, ["GET"]),
        ("/me", handlers.me, ["GET"]),
        ("/me/accounts", handlers.accounts, ["GET"]),
        ("/{node}/messages", handlers.messages, ["POST"]),
        ("/{node}/permissions", handlers.permissions, ["DELETE"]),
        ("/{node}/{edge}", handlers.edge, ["GET"]),
    ]
    return [Route(path, endpoint, methods=methods) for path, endpoint, methods in routes]
