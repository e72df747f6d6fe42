"""The ops page: server-rendered HTML for operators, behind LEADLINE_OPS_TOKEN.

GET /ops shows queues, dead letters (with replay/purge buttons), attention lists and the last
scheduled job runs; every POST needs a valid session and its CSRF token. Pages carry a CSP
that allows the page's own stylesheet and same-origin forms, nothing else (no scripts).
Wrong tokens (login form or Bearer) count against the address's ops-login failures: past the
limit (5 a minute by default) they are answered 429 with Retry-After. The right token is never
refused for others' failures. Logout revokes the session server side.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from intake.limits import count_auth_failure
from intake.ops_auth import BEARER_SESSION, OpsAuth, OpsSessions
from intake.ops_view import render, take_snapshot
from intake.responses import error_response
from leadline.errors import NotFoundError
from tasks.context import TaskContext
from workers.brokers import LeadlineBroker, current_broker
from workers.dlq import DeadLetterResult, purge_dead_letter, replay_dead_letter

router = APIRouter(prefix="/ops")
OPERATOR = "operator:ops-page"
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
NOTICES = {
    "replayed": "Replayed: the message was re-enqueued with its original id.",
    "purged": "Purged: the message was removed.",
    "unchanged": "Nothing done: that entry was already handled.",
}
STYLESHEET = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d232a; }
h1 { font-size: 1.3rem; } h2 { font-size: 1.05rem; margin-top: 1.6rem; }
table { border-collapse: collapse; margin: .4rem 0; }
th, td { border-bottom: 1px solid #d8dde3; padding: .25rem .6rem; text-align: left; }
th { background: #f1f3f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
form.inline { display: inline; } .notice { background: #e7f5e9; padding: .5rem .8rem; }
.error { color: #a61b1b; } .muted { color: #6b7480; } header form { float: right; }
"""
DeadLetterAction = Callable[[Session, LeadlineBroker, str, str, datetime], DeadLetterResult]


def page(html: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code=status, headers={"content-security-policy": PAGE_CSP})


def ops_auth(request: Request) -> OpsAuth | None:
    context: TaskContext = request.app.state.context
    token = context.settings.leadline_ops_token
    return OpsAuth(token) if token is not None else None


def ops_sessions(request: Request) -> OpsSessions:
    sessions: OpsSessions = request.app.state.ops_sessions
    return sessions


async def current_session(request: Request, auth: OpsAuth) -> str | None:
    """The session id of a signed-in request (a live cookie session, or the Bearer token).

    A wrong Bearer token is a failed login: counted, and 429 once the address used them up."""
    session_id = auth.session_of(request)
    if session_id is None:
        if request.headers.get("authorization"):
            await count_auth_failure(request, "ops_login")
        return None
    if session_id == BEARER_SESSION:
        return session_id
    alive = await run_in_threadpool(ops_sessions(request).alive, session_id)
    return session_id if alive else None


def disabled() -> Response:
    return error_response(503, "ops page disabled: LEADLINE_OPS_TOKEN is not set")


def login_page(auth: OpsAuth, status: int = 401, error: str | None = None) -> Response:
    csrf, cookie = auth.new_login()
    response = page(render("ops_login.html", csrf=csrf, error=error), status)
    auth.set_login_cookie(response, cookie)
    return response


@router.get("/ops.css")
async def stylesheet() -> Response:
    return Response(STYLESHEET, media_type="text/css")


@router.get("")
async def ops_page(request: Request) -> Response:
    auth = ops_auth(request)
    if auth is None:
        return disabled()
    session_id = await current_session(request, auth)
    if session_id is None:
        return login_page(auth)
    context: TaskContext = request.app.state.context
    snapshot = await run_in_threadpool(take_snapshot, context.db, current_broker(), context.clock())
    notice = NOTICES.get(request.query_params.get("done", ""))
    html = render("ops.html", s=snapshot, csrf=auth.csrf_token(session_id), notice=notice)
    return page(html)


@router.post("/login")
async def login(request: Request) -> Response:
    auth = ops_auth(request)
    if auth is None:
        return disabled()
    form = await form_values(request)
    if not auth.login_csrf_valid(request, form.get("csrf")):
        return error_response(403, "invalid or missing CSRF token")
    if not auth.token_matches(form.get("token", "")):
        await count_auth_failure(request, "ops_login")
        return login_page(auth, error="That token is not valid.")
    response = RedirectResponse("/ops", status_code=303)
    session_id = auth.start_session(response)
    await run_in_threadpool(ops_sessions(request).add, session_id)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    auth, refusal = await authorised_post(request)
    if auth is None:
        return refusal
    session_id = auth.session_of(request)
    if session_id is not None and session_id != BEARER_SESSION:
        await run_in_threadpool(ops_sessions(request).revoke, session_id)
    response = RedirectResponse("/ops", status_code=303)
    auth.end_session(response)
    return response


@router.post("/dead-letters/{key}/replay")
async def replay(request: Request, key: str) -> Response:
    return await dead_letter_action(request, key, replay_dead_letter, "replayed")


@router.post("/dead-letters/{key}/purge")
async def purge(request: Request, key: str) -> Response:
    return await dead_letter_action(request, key, purge_dead_letter, "purged")


async def dead_letter_action(
    request: Request, key: str, action: DeadLetterAction, done: str
) -> Response:
    auth, refusal = await authorised_post(request)
    if auth is None:
        return refusal
    context: TaskContext = request.app.state.context
    try:
        outcome = await run_in_threadpool(run_action, context, action, key)
    except NotFoundError:
        return error_response(404, "no such dead letter")
    return RedirectResponse(f"/ops?done={done if outcome.done else 'unchanged'}", 303)


def run_action(context: TaskContext, action: DeadLetterAction, key: str) -> DeadLetterResult:
    with context.db.maintenance() as session:
        return action(session, current_broker(), key, OPERATOR, context.clock())


async def authorised_post(request: Request) -> tuple[OpsAuth | None, Response]:
    """(auth, _) for a signed-in request with the session's CSRF token, else (None, refusal)."""
    auth = ops_auth(request)
    if auth is None:
        return None, disabled()
    session_id = await current_session(request, auth)
    if session_id is None:
        return None, error_response(401, "operator token required")
    form = await form_values(request)
    if not auth.csrf_valid(session_id, form.get("csrf")):
        return None, error_response(403, "invalid or missing CSRF token")
    return auth, Response(status_code=204)


async def form_values(request: Request) -> dict[str, str]:
    if not request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        return {}
    form = await request.form()
    return {name: value for name, value in form.items() if isinstance(value, str)}
