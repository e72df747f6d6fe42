"""`uvicorn intake.asgi:build --factory`: the intake app wired from the environment."""

from __future__ import annotations

import gc
import logging

from starlette.types import ASGIApp


def build() -> ASGIApp:
    from intake.app import create_app
    from tasks.context import open_runtime

    app = create_app(open_runtime())
    quiet_uvicorn_access_log()
    freeze_startup_objects()
    return app


def freeze_startup_objects() -> None:
    # The ~120,000 objects of the loaded app (modules, SQLAlchemy mappers, pydantic schemas)
    # live as long as the process; a full collection walked them all and stalled every
    # request for ~100 ms a few times a minute under load. Frozen, they are skipped (~3 ms).
    gc.freeze()


def quiet_uvicorn_access_log() -> None:
    # RequestIdMiddleware already logs one line per request (with its request id); logging
    # setup re-attaches uvicorn's access logger to the root, which `access_log=False` meant
    # to keep off, and doubled the per-request logging cost.
    logging.getLogger("uvicorn.access").propagate = False
