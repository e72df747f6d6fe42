"""Liveness (`/healthz`: the process answers) and readiness (`/readyz`: Postgres, Redis and the
broker reachable, schema at the migrations' heads)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from tasks.context import TaskContext
from workers.brokers import current_broker
from workers.readiness import readiness

router = APIRouter()


@router.get("/healthz")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    context: TaskContext = request.app.state.context
    report = await run_in_threadpool(
        readiness, context.db, current_broker(), context.settings.leadline_redis_url
    )
    return JSONResponse(report.as_dict(), status_code=200 if report.ready else 503)
