"""`uvicorn intake.asgi:build --factory`: the intake app wired from the environment."""

from __future__ import annotations

import logging

from starlette.types import ASGIApp


def build() -> ASGIApp:
    from intake.app import create_app
    from leadline.commands.common import open_runtime

    app = create_app(open_runtime())
    quiet_uvicorn_access_log()
    return app


def quiet_uvicorn_access_log() -> None:
    # RequestIdMiddleware already logs one line per request (with its request id); logging
    # setup re-attaches uvicorn's access logger to the root, which `access_log=False` meant
    # to keep off, and doubled the per-request logging cost.
    logging.getLogger("uvicorn.access").propagate = False
