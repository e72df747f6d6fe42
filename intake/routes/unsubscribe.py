"""/unsubscribe/{token}: the one-click unsubscribe link of every campaign email (RFC 8058).

POST (what a mail client sends for `List-Unsubscribe-Post: List-Unsubscribe=One-Click`, and
what the page's button sends) suppresses the address at once and says so; a second POST
changes nothing and says the same. GET only shows a page with that button: link scanners and
prefetchers follow GET links, so a GET must never unsubscribe anyone. A token that is forged,
altered or expired is refused with 403 before anything is looked up (tasks/unsubscribe.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from intake.hooks import context_of
from intake.responses import error_response
from leadline.errors import VerificationError
from tasks.unsubscribe import UnsubscribeTarget, read_token, unsubscribe

router = APIRouter()
PAGE_CSP = "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
CONFIRM_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Unsubscribe</title></head>
<body><h1>Unsubscribe</h1>
<p>Stop receiving marketing email from this sender at this address?</p>
<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button></form></body></html>
"""
DONE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Unsubscribed</title></head>
<body><h1>You are unsubscribed</h1>
<p>This sender will send no more email to this address.</p></body></html>
"""


def page(html: str) -> HTMLResponse:
    headers = {"content-security-policy": PAGE_CSP, "cache-control": "no-store"}
    return HTMLResponse(html, headers=headers)


def target_of(request: Request, token: str) -> UnsubscribeTarget | None:
    context = context_of(request)
    try:
        return read_token(context.settings, token, context.clock())
    except VerificationError:
        return None


def refused() -> Response:
    return error_response(403, "this unsubscribe link is not valid")


@router.get("/unsubscribe/{token}", include_in_schema=False)
async def confirm(request: Request, token: str) -> Response:
    return page(CONFIRM_PAGE) if target_of(request, token) is not None else refused()


@router.post("/unsubscribe/{token}", include_in_schema=False)
async def one_click(request: Request, token: str) -> Response:
    target = target_of(request, token)
    if target is None:
        return refused()
    await run_in_threadpool(unsubscribe, context_of(request), target)
    return page(DONE_PAGE)
