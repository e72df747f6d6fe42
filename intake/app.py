"""The intake ASGI application, wrapped in its protective middleware."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp

from intake.api_errors import ApiError, ApiErrorShapeMiddleware, not_found
from intake.hooks import LogThrottle
from intake.limits import RateLimiter, RateLimitExceeded
from intake.middleware import (
    BodyLimitMiddleware,
    BodyTimeout,
    BodyTimeoutMiddleware,
    BodyTooLarge,
    ClientAddressMiddleware,
    RequestIdMiddleware,
    SecurityHeadersMiddleware,
)
from intake.oidc import OidcVerifier
from intake.openapi import include_tenant_api
from intake.ops_auth import OpsSessions
from intake.rejections import RejectionMetricsMiddleware
from intake.responses import error_response
from intake.routes import (
    api_docs,
    health,
    meta,
    metrics,
    oauth,
    ops,
    postmark,
    stripe,
    telegram,
    twilio,
    unsubscribe,
)
from intake.routes.imports import MAX_UPLOAD_BODY_BYTES
from intake.schemas import safe_errors
from intake.spool import RoutingCache, Spool, database_unreachable, replay_forever, unavailable
from leadline.logging import get_logger
from tasks.context import TaskContext

log = get_logger("leadline.intake")


def create_fastapi(context: TaskContext) -> FastAPI:
    app = FastAPI(
        title="Leadline intake",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=replaying_spool,
    )
    app.state.context = context
    app.state.spool = Spool.from_context(context)
    app.state.routing_cache = RoutingCache(
        key_ttl=context.settings.leadline_spool_cache_seconds,
        provider_ttl=context.settings.leadline_spool_provider_routing_seconds,
    )
    app.state.limiter = RateLimiter.from_settings(context.settings)
    assert context.settings.leadline_redis_url is not None
    app.state.ops_sessions = OpsSessions.from_url(
        context.settings.leadline_redis_url, context.settings.leadline_redis_namespace
    )
    app.state.rejection_log = LogThrottle()
    app.state.oidc = OidcVerifier(context.settings) if context.settings.oidc_enabled else None
    app.include_router(health.router)
    include_tenant_api(app)
    app.include_router(api_docs.router)
    for provider in sorted(context.settings.enabled_providers):
        app.include_router(PROVIDER_ROUTERS[provider])
    app.include_router(oauth.router)
    # Email (docs/messaging.md "Email"): its webhook refuses everything until its credentials
    # are set, and the unsubscribe links of emails already sent must keep working.
    app.include_router(postmark.router)
    app.include_router(unsubscribe.router)
    app.include_router(metrics.router)
    app.include_router(ops.router)
    add_error_handlers(app)
    return app


@contextlib.asynccontextmanager
async def replaying_spool(app: FastAPI) -> AsyncIterator[None]:
    """Events spooled during a database outage (by this or an earlier process) are replayed
    from start-up on, every second while any are left. The in-process caches serve from
    start-up on (models/cache.py)."""
    app.state.context.db.start_cache_invalidations()
    task = asyncio.create_task(replay_forever(app.state.context, app.state.spool))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        app.state.spool.close()
        app.state.context.db.stop_cache_invalidations()


PROVIDER_ROUTERS = {
    "twilio": twilio.router,
    "stripe": stripe.router,
    "telegram": telegram.router,
    "meta": meta.router,
}


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(_: Request, __: Exception) -> Response:
        return error_response(413, "request body too large")

    @app.exception_handler(BodyTimeout)
    async def body_timed_out(_: Request, __: Exception) -> Response:
        response = error_response(408, "request body timed out")
        response.headers["Connection"] = "close"
        return response

    @app.exception_handler(RateLimitExceeded)
    async def rate_limited(request: Request, exc: Exception) -> Response:
        retry_after = exc.retry_after if isinstance(exc, RateLimitExceeded) else 60
        response = error_response(429, "too many requests")
        response.headers["Retry-After"] = str(retry_after)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: Exception) -> Response:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        if errors and all(error.get("loc", ("",))[0] == "path" for error in errors):
            return not_found().response()  # a malformed id names nothing, like an unknown one
        return error_response(422, "invalid request", fields=safe_errors(errors))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return error_response(status, "not found" if status == 404 else "request failed")

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:
        if database_unreachable(exc):
            return unavailable()
        log.error("unhandled error", error=type(exc).__name__)
        return error_response(500, "internal error")


def create_app(context: TaskContext) -> ASGIApp:
    """The FastAPI app inside the middleware that must see every response, 5xx included."""
    return protect(create_fastapi(context), context)


def protect(app: ASGIApp, context: TaskContext) -> ASGIApp:
    settings = context.settings
    app = BodyLimitMiddleware(
        app, settings.leadline_max_body_bytes, {"/v1/imports": MAX_UPLOAD_BODY_BYTES}
    )
    app = BodyTimeoutMiddleware(app, settings.leadline_body_timeout_seconds)
    app = ApiErrorShapeMiddleware(app)  # outside the body cap and timeout: their answers too
    app = RejectionMetricsMiddleware(app)
    app = RequestIdMiddleware(app)
    app = SecurityHeadersMiddleware(app)
    # Outermost: everything inside (limits, refusals, logs) sees the resolved client address.
    return ClientAddressMiddleware(app, settings.trusted_proxy_networks)
