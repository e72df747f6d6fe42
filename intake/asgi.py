"""`uvicorn intake.asgi:build --factory`: the intake app wired from the environment."""

from __future__ import annotations

from starlette.types import ASGIApp


def build() -> ASGIApp:
    from intake.app import create_app
    from leadline.commands.common import open_runtime

    return create_app(open_runtime())
