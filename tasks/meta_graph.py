"""Meta's Graph API (META_GRAPH_BASE; the provider sandbox in development and tests): the
OAuth code exchange, the accounts an authorization serves, revocation, and sending on
Instagram, Messenger and WhatsApp.

Tokens travel in the Authorization header or a form body, never in a URL we build, and
never in a log line or an exception message (httpx's messages name the URL only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from leadline.logging import get_logger
from leadline.metrics import PROVIDER_ERRORS
from leadline.settings import Settings
from models.connections import ConnectionKind, GrantedAccount
from tasks.providers import ProviderResult

log = get_logger(__name__)
# Graph error codes: the token is invalid, expired or revoked; rate limits; WhatsApp's
# "more than 24 hours since the customer last replied".
INVALID_TOKEN = 190
RATE_LIMITS = frozenset({4, 17, 32, 613, 80007, 130429})
OUTSIDE_WINDOW = 131047
PAGE_LIMIT = "100"
MAX_PAGES = 20
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class GraphError(Exception):
    """The Graph API refused a call or could not be reached (code 0: no usable answer)."""

    def __init__(self, code: int, status: int) -> None:
        super().__init__(f"Graph API error {code} (HTTP {status})")
        self.code = code
        self.status = status


@dataclass(frozen=True)
class Grant:
    """What an authorization code became: the Meta user, and the accounts with their tokens."""

    user_id: str
    user_token: str
    accounts: list[GrantedAccount]

    def __repr__(self) -> str:
        return f"Grant(user_id={self.user_id!r}, accounts={self.accounts!r})"


def _client(settings: Settings) -> httpx.Client:
    return httpx.Client(
        base_url=settings.meta_graph_base.rstrip("/"),
        timeout=settings.leadline_provider_timeout_seconds,
        trust_env=False,
        follow_redirects=False,
    )


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    body: dict[str, Any] = data if isinstance(data, dict) else {}
    if response.is_success:
        return body
    error = body.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    raise GraphError(code if isinstance(code, int) else 0, response.status_code)


def _call(client: httpx.Client, method: str, path: str, **options: Any) -> dict[str, Any]:
    try:
        return _answer(client.request(method, path, **options))
    except httpx.HTTPError as exc:
        log.warning("graph call failed", error=type(exc).__name__)
        raise GraphError(0, 0) from None


def _data(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in body.get("data") or [] if isinstance(item, dict)]


def _listed(
    client: httpx.Client, path: str, token: str, params: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every item of a Graph list, page after page by its `after` cursor. Never by the
    `paging.next` URL: Meta puts the access token in it, and URLs get logged."""
    query = {**(params or {}), "limit": PAGE_LIMIT}
    found: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        body = _call(client, "GET", path, params=query, headers=_auth(token))
        found.extend(_data(body))
        paging = body.get("paging")
        cursors = paging.get("cursors") if isinstance(paging, dict) else None
        after = cursors.get("after") if isinstance(cursors, dict) else None
        if not (isinstance(paging, dict) and paging.get("next") and isinstance(after, str)):
            break
        query = {**query, "after": after}
    return found


def _token_of(body: dict[str, Any]) -> str:
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise GraphError(0, 200)
    return token


def app_credentials(settings: Settings) -> dict[str, str]:
    assert settings.meta_app_id and settings.meta_app_secret
    return {
        "client_id": settings.meta_app_id,
        "client_secret": settings.meta_app_secret.get_secret_value(),
    }


def exchange_code(settings: Settings, code: str, redirect_uri: str) -> Grant:
    """Code → user token → long-lived user token → the pages, Instagram accounts and
    WhatsApp numbers it serves. Raises GraphError."""
    app = app_credentials(settings)
    with _client(settings) as client:
        short = _token_of(
            _call(
                client,
                "POST",
                "/oauth/access_token",
                data={**app, "redirect_uri": redirect_uri, "code": code},
            )
        )
        long_lived = _token_of(
            _call(
                client,
                "POST",
                "/oauth/access_token",
                data={**app, "grant_type": "fb_exchange_token", "fb_exchange_token": short},
            )
        )
        me = _call(client, "GET", "/me", params={"fields": "id"}, headers=_auth(long_lived))
        user_id = str(me.get("id", ""))
        if not user_id:
            raise GraphError(0, 200)
        accounts = page_accounts(client, long_lived) + whatsapp_accounts(client, long_lived)
    return Grant(user_id, long_lived, accounts)


def page_accounts(client: httpx.Client, user_token: str) -> list[GrantedAccount]:
    """Each page (Messenger) and the Instagram account linked to it, with the page token."""
    fields = {"fields": "id,name,access_token,instagram_business_account{id,username}"}
    found: list[GrantedAccount] = []
    for page in _listed(client, "/me/accounts", user_token, fields):
        page_id, token = str(page.get("id", "")), page.get("access_token")
        if not page_id or not isinstance(token, str):
            continue
        found.append(GrantedAccount(ConnectionKind.MESSENGER, page_id, page.get("name"), token))
        instagram = page.get("instagram_business_account")
        if isinstance(instagram, dict) and instagram.get("id"):
            name = instagram.get("username")
            found.append(
                GrantedAccount(ConnectionKind.INSTAGRAM, str(instagram["id"]), name, token)
            )
    return found


def whatsapp_accounts(client: httpx.Client, user_token: str) -> list[GrantedAccount]:
    """Each phone number of each WhatsApp business account of the user's businesses."""
    found: list[GrantedAccount] = []
    for business in _listed(client, "/me/businesses", user_token):
        owned = f"/{business.get('id')}/owned_whatsapp_business_accounts"
        for waba in _listed(client, owned, user_token):
            numbers = _listed(client, f"/{waba.get('id')}/phone_numbers", user_token)
            found.extend(
                GrantedAccount(
                    ConnectionKind.WHATSAPP,
                    str(number["id"]),
                    number.get("display_phone_number"),
                    user_token,
                )
                for number in numbers
                if number.get("id")
            )
    return found


def revoke_grant(settings: Settings, user_id: str, token: str) -> None:
    """DELETE /{user-id}/permissions. A token already invalid counts as revoked. Raises
    GraphError when the provider could not be asked."""
    with _client(settings) as client:
        try:
            _call(client, "DELETE", f"/{user_id}/permissions", headers=_auth(token))
        except GraphError as exc:
            if exc.code != INVALID_TOKEN:
                raise


def message_body(channel: str, recipient: str, text: str) -> dict[str, Any]:
    if channel == ConnectionKind.WHATSAPP:
        return {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": recipient,
            "type": "text",
            "text": {"body": text},
        }
    return {"recipient": {"id": recipient}, "messaging_type": "RESPONSE", "message": {"text": text}}


def send_graph_message(
    settings: Settings, channel: str, account_id: str, token: str, recipient: str, text: str
) -> ProviderResult:
    """POST /{page-id | instagram-id | phone-number-id}/messages with the connection's token."""
    try:
        with _client(settings) as client:
            response = client.post(
                f"/{account_id}/messages",
                json=message_body(channel, recipient, text),
                headers=_auth(token),
            )
    except _NEVER_SENT as exc:
        return _transport_error(exc, never_sent=True)
    except httpx.HTTPError as exc:
        return _transport_error(exc, never_sent=False)
    return graph_send_result(response)


def graph_send_result(response: httpx.Response) -> ProviderResult:
    try:
        body = _answer(response)
    except GraphError as exc:
        return graph_error_result(exc)
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        return ProviderResult("sent", provider_sid=str(messages[0].get("id"))[:64])
    return ProviderResult("sent", provider_sid=str(body.get("message_id", ""))[:64] or None)


def graph_error_result(exc: GraphError) -> ProviderResult:
    """190: the connection's token is gone (expired); rate limits and 5xx: retry; the rest,
    WhatsApp's closed 24-hour window included, fail."""
    label = str(exc.code or exc.status)
    PROVIDER_ERRORS.labels(provider="meta", code=label).inc()
    if exc.code == INVALID_TOKEN:
        return ProviderResult("expired", code=label)
    if exc.code in RATE_LIMITS or exc.status == 429 or exc.status >= 500:
        return ProviderResult("retry", code=label)
    if exc.code == OUTSIDE_WINDOW:
        return ProviderResult("failed", code="template_required")
    return ProviderResult("failed", code=label)


def _transport_error(exc: Exception, never_sent: bool) -> ProviderResult:
    code = "connect" if never_sent else "no_answer"
    PROVIDER_ERRORS.labels(provider="meta", code=code).inc()
    log.warning("provider call failed", provider="meta", error=type(exc).__name__, code=code)
    return ProviderResult("retry" if never_sent else "unknown", code=code)
