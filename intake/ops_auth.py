"""Operator authentication for /ops: the ops token as a Bearer header, or a signed session
cookie set by the login form; CSRF tokens tied to the session.

Everything is derived from LEADLINE_OPS_TOKEN with HMAC, so rotating the token ends every
session and invalidates every CSRF token. Comparisons are constant-time. A signed cookie is
also only good while its session is live server side (OpsSessions, in Redis): logging out
revokes it, so a copied cookie stops working at logout.

- session cookie `__Host-leadline_ops` = `<session id>.<expiry>.<signature>`, Secure,
  HttpOnly, SameSite=Strict, Path=/ (the `__Host-` prefix forbids a Domain attribute);
- CSRF token = HMAC(key, "csrf|" + session id); a Bearer request's session id is "bearer";
- the login form is itself CSRF-protected by a short-lived pre-login nonce cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

import redis
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "__Host-leadline_ops"
LOGIN_COOKIE = "__Host-leadline_ops_login"
SESSION_SECONDS = 8 * 3600
LOGIN_SECONDS = 15 * 60
BEARER_SESSION = "bearer"
MAX_TOKEN_LENGTH = 512


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class OpsAuth:
    def __init__(self, ops_token: SecretStr) -> None:
        secret = ops_token.get_secret_value().encode()
        self._token_digest = hashlib.sha256(secret).digest()
        self._key = hmac.new(secret, b"leadline-ops-v1", hashlib.sha256).digest()

    def token_matches(self, candidate: str) -> bool:
        if not candidate or len(candidate) > MAX_TOKEN_LENGTH:
            return False
        digest = hashlib.sha256(candidate.encode()).digest()
        return hmac.compare_digest(digest, self._token_digest)

    def _sign(self, purpose: str, value: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}|{value}".encode(), hashlib.sha256).digest())

    def session_of(self, request: Request, now: float | None = None) -> str | None:
        """The session id of an authenticated request, or None."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.token_matches(token.strip()):
            return BEARER_SESSION
        return self._verified(request.cookies.get(SESSION_COOKIE), "session", now)

    def _verified(self, cookie: str | None, purpose: str, now: float | None) -> str | None:
        value, _, signature = (cookie or "").rpartition(".")
        ident, _, expiry = value.partition(".")
        if not (ident and expiry.isdigit() and signature):
            return None
        if not hmac.compare_digest(self._sign(purpose, value), signature):
            return None
        return ident if int(expiry) > (now or time.time()) else None

    def _issue(self, purpose: str, seconds: int) -> tuple[str, str]:
        ident = secrets.token_urlsafe(18)
        value = f"{ident}.{int(time.time()) + seconds}"
        return ident, f"{value}.{self._sign(purpose, value)}"

    def csrf_token(self, session_id: str) -> str:
        return self._sign("csrf", session_id)

    def csrf_valid(self, session_id: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session_id), str(token))

    def new_login(self) -> tuple[str, str]:
        """(CSRF token for the login form, value of the pre-login nonce cookie)."""
        nonce, cookie = self._issue("login", LOGIN_SECONDS)
        return self.csrf_token("login:" + nonce), cookie

    @staticmethod
    def set_login_cookie(response: Response, cookie: str) -> None:
        set_cookie(response, LOGIN_COOKIE, cookie, LOGIN_SECONDS)

    def login_csrf_valid(self, request: Request, token: str | None) -> bool:
        nonce = self._verified(request.cookies.get(LOGIN_COOKIE), "login", None)
        return nonce is not None and self.csrf_valid("login:" + nonce, token)

    def start_session(self, response: Response) -> str:
        """Set a new session cookie on `response`; returns the session id to keep live."""
        ident, cookie = self._issue("session", SESSION_SECONDS)
        set_cookie(response, SESSION_COOKIE, cookie, SESSION_SECONDS)
        response.delete_cookie(
            LOGIN_COOKIE, path="/", secure=True, httponly=True, samesite="strict"
        )
        return ident

    @staticmethod
    def end_session(response: Response) -> None:
        response.delete_cookie(
            SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict"
        )


def set_cookie(response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="strict"
    )


class OpsSessions:
    """The live ops sessions, server side. Redis holds only a hash of each session id (no
    operator data), expiring with the session; logout deletes it."""

    def __init__(self, client: redis.Redis[bytes], namespace: str) -> None:
        self.client = client
        self.namespace = namespace

    @classmethod
    def from_url(cls, redis_url: str, namespace: str) -> OpsSessions:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
        return cls(client, namespace)

    def key(self, session_id: str) -> str:
        return f"{self.namespace}:ops-session:{hashlib.sha256(session_id.encode()).hexdigest()}"

    def add(self, session_id: str, seconds: int = SESSION_SECONDS) -> None:
        self.client.set(self.key(session_id), b"1", ex=seconds)

    def alive(self, session_id: str) -> bool:
        """Whether the session is live; False too when Redis cannot say (fail closed)."""
        try:
            return bool(self.client.exists(self.key(session_id)))
        except redis.RedisError:
            return False

    def revoke(self, session_id: str) -> None:
        self.client.delete(self.key(session_id))
