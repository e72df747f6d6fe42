"""Running one tenant API request's work: in a worker thread, in one tenant transaction with
the org's cipher, messages enqueued after COMMIT; a row the org cannot see is 404."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from intake.api_errors import not_found
from intake.hooks import context_of
from intake.principals import Principal
from leadline.errors import NotFoundError
from models.crypto import OrgCipher
from tasks.after_commit import AfterCommit
from tasks.context import TaskContext

T = TypeVar("T")


@dataclass(frozen=True)
class TenantCall:
    context: TaskContext
    session: Session
    cipher: OrgCipher
    after_commit: AfterCommit
    now: datetime
    actor: str  # the principal's name in the audit log


async def in_tenant(request: Request, principal: Principal, work: Callable[[TenantCall], T]) -> T:
    context = context_of(request)

    def run() -> T:
        after_commit = AfterCommit()
        with context.db.tenant(principal.org_id) as session:
            cipher = context.keys.cipher(session, principal.org_id)
            call = TenantCall(
                context, session, cipher, after_commit, context.clock(), principal.subject
            )
            result = work(call)
        after_commit.flush()
        return result

    try:
        return await run_in_threadpool(run)
    except NotFoundError:
        raise not_found() from None
