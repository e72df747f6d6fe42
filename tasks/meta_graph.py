"""Meta's Graph API (META_GRAPH_BASE; the provider sandbox in development and tests): the
OAuth code exchange, the accounts an authorization serves, revocation, and sending on
Instagram, Messenger and WhatsApp.

Tokens travel in the Authorization header or a form body, never in a URL we build, and
never in a log line or an exception message (httpx's messages name the URL only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from leadline.jsondata import JsonObject, as_list, as_object, text
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


def _answer(response: httpx.Response) -> JsonObject:
    try:
        body = as_object(response.json())
    except ValueError:
        body = {}
    if response.is_success:
        return body
    code = as_object(body.get("error")).get("code")
    raise GraphError(code if isinstance(code, int) else 0, response.status_code)


def _call(
    client: httpx.Client,
    method: str,
    path: str,
    params: Mapping[str, str] | None = None,
    data: Mapping[str, str] | None = None,
    token: str | None = None,
) -> JsonObject:
    headers = _auth(token) if token is not None else None
    try:
        response = client.request(method, path, params=params, data=data, headers=headers)
        return _answer(response)
    except httpx.HTTPError as exc:
        log.warning("graph call failed", error=type(exc).__name__)
        raise GraphError(0, 0) from None


def _data(body: JsonObject) -> list[JsonObject]:
    return [item for item in as_list(body.get("data")) if isinstance(item, dict)]


def _listed(
    client: httpx.Client, path: str, token: str, params: dict[str, str] | None = None
) -> list[JsonObject]:
    """Every item of a Graph list, page after page by its `after` cursor. Never by the
    `paging.next` URL: Meta puts the access token in it, and URLs get logged."""
    query = {**(params or {}), "limit": PAGE_LIMIT}
    found: list[JsonObject] = []
    for _ in range(MAX_PAGES):
        body = _call(client, "GET", path, params=query, token=token)
        found.extend(_data(body))
        paging = as_object(body.get("paging"))
        after = text(as_object(paging.get("cursors")).get("after"))
        if not (paging.get("next") and after):
            break
        query = {**query, "after": after}
    return found


def _token_of(body: JsonObject) -> str:
    token = text(body.get("access_token"))
    if not token:
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
        me = _call(client, "GET", "/me", params={"fields": "id"}, token=long_lived)
        user_id = text(me.get("id"))
        if not user_id:
            raise GraphError(0, 200)
        accounts = page_accounts(client, long_lived) + whatsapp_accounts(client, long_lived)
    return Grant(user_id, long_lived, accounts)


def page_accounts(client: httpx.Client, user_token: str) -> list[GrantedAccount]:
    """Each page (Messenger) and the Instagram account linked to it, with the page token."""
    fields = {"fields": "id,name,access_token,instagram_business_account{id,username}"}
    found: list[GrantedAccount] = []
    for page in _listed(client, "/me/accounts", user_token, fields):
        page_id, token = text(page.get("id")), text(page.get("access_token"))
        if not page_id or not token:
            continue
        name = text(page.get("name"))
        found.append(GrantedAccount(ConnectionKind.MESSENGER, page_id, name, token))
        instagram = as_object(page.get("instagram_business_account"))
        instagram_id = text(instagram.get("id"))
        if instagram_id:
            username = text(instagram.get("username"))
            found.append(GrantedAccount(ConnectionKind.INSTAGRAM, instagram_id, username, token))
    return found


def whatsapp_accounts(client: httpx.Client, user_token: str) -> list[GrantedAccount]:
    """Each phone number of each WhatsApp business account of the user's businesses."""
    found: list[GrantedAccount] = []
    for business in _listed(client, "/me/businesses", user_token):
        owned = f"/{business.get('id')}/owned_whatsapp_business_accounts"
        for waba in _listed(client, owned, user_token):
            for number in _listed(client, f"/{waba.get('id')}/phone_numbers", user_token):
                number_id, shown = text(number.get("id")), text(number.get("display_phone_number"))
                if number_id:
                    found.append(
                        GrantedAccount(ConnectionKind.WHATSAPP, number_id, shown, user_token)
                    )
    return found


def revoke_grant(settings: Settings, user_id: str, token: str) -> None:
    """DELETE /{user-id}/permissions. A token already invalid counts as revoked. Raises
    GraphError when the provider could not be asked."""
    with _client(settings) as client:
        try:
            _call(client, "DELETE", f"/{user_id}/permissions", token=token)
        except GraphError as exc:
            if exc.code != INVALID_TOKEN:
                raise


def message_body(channel: str, recipient: str, body: str) -> JsonObject:
    if channel == ConnectionKind.WHATSAPP:
        return {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": recipient,
            "type": "text",
            "text": {"body": body},
        }
    return {"recipient": {"id": recipient}, "messaging_type": "RESPONSE", "message": {"text": body}}


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
    messages = as_list(body.get("messages"))
    sid = text(as_object(messages[0]).get("id")) if messages else text(body.get("message_id"))
    return ProviderResult("sent", provider_sid=sid[:64] if sid else None)


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
