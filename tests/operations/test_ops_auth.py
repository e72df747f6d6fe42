from __future__ import annotations

import time

import pytest
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response

from intake.ops_auth import LOGIN_COOKIE, SESSION_COOKIE, OpsAuth

pytestmark = pytest.mark.unit

TOKEN = "an-operator-token-that-is-long-enough-0001"


def request_with(cookies: dict[str, str] | None = None, bearer: str | None = None) -> Request:
    headers: list[tuple[bytes, bytes]] = []
    if cookies:
        cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
        headers.append((b"cookie", cookie.encode()))
    if bearer:
        headers.append((b"authorization", f"Bearer {bearer}".encode()))
    return Request({"type": "http", "method": "GET", "path": "/ops", "headers": headers})


def session_cookie(auth: OpsAuth) -> str:
    response = Response()
    auth.start_session(response)
    header = next(
        v for k, v in response.raw_headers if k == b"set-cookie" and SESSION_COOKIE.encode() in v
    )
    value = header.decode().split(";")[0].split("=", 1)[1]
    attributes = header.decode().lower()
    assert "secure" in attributes and "httponly" in attributes and "samesite=strict" in attributes
    return value


def test_sessions_are_signed_and_expire() -> None:
    auth = OpsAuth(SecretStr(TOKEN))
    cookie = session_cookie(auth)
    session_id = auth.session_of(request_with({SESSION_COOKIE: cookie}))
    assert session_id is not None
    assert (
        auth.session_of(request_with({SESSION_COOKIE: cookie}), now=time.time() + 9 * 3600) is None
    )
    ident, expiry, signature = cookie.split(".")
    longer = f"{ident}.{int(expiry) + 86400}.{signature}"
    assert auth.session_of(request_with({SESSION_COOKIE: longer})) is None
    assert auth.session_of(request_with({SESSION_COOKIE: "x.1.y"})) is None
    assert auth.session_of(request_with()) is None


def test_rotating_the_token_ends_sessions_and_csrf_tokens() -> None:
    auth = OpsAuth(SecretStr(TOKEN))
    cookie = session_cookie(auth)
    session_id = auth.session_of(request_with({SESSION_COOKIE: cookie}))
    assert session_id is not None
    rotated = OpsAuth(SecretStr(TOKEN + "-rotated"))
    assert rotated.session_of(request_with({SESSION_COOKIE: cookie})) is None
    assert not rotated.csrf_valid(session_id, auth.csrf_token(session_id))


def test_csrf_tokens_are_tied_to_their_session() -> None:
    auth = OpsAuth(SecretStr(TOKEN))
    assert auth.csrf_valid("session-a", auth.csrf_token("session-a"))
    assert not auth.csrf_valid("session-b", auth.csrf_token("session-a"))
    assert not auth.csrf_valid("session-a", None)
    assert not auth.csrf_valid("session-a", "")


def test_bearer_token_and_login_nonce() -> None:
    auth = OpsAuth(SecretStr(TOKEN))
    assert auth.session_of(request_with(bearer=TOKEN)) == "bearer"
    assert auth.session_of(request_with(bearer=TOKEN[:-1])) is None
    assert not auth.token_matches("x" * 10_000)
    csrf, nonce_cookie = auth.new_login()
    assert auth.login_csrf_valid(request_with({LOGIN_COOKIE: nonce_cookie}), csrf)
    _, other_cookie = auth.new_login()
    assert not auth.login_csrf_valid(request_with({LOGIN_COOKIE: other_cookie}), csrf)
    assert not auth.login_csrf_valid(request_with(), csrf)
