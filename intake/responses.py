"""Short JSON error bodies that never echo what the client sent."""

from __future__ import annotations

from starlette.responses import JSONResponse


def error_response(status: int, error: str, **extra: object) -> JSONResponse:
    return JSONResponse({"error": error, **extra}, status_code=status)
