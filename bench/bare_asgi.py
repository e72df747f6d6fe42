"""The baseline for the intake benchmark: a bare ASGI endpoint that reads the body and
answers 202 with an id, served by uvicorn with exactly the intake's server settings.

`python -m bench.bare_asgi --port P [--workers N]`
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Awaitable, Callable

from starlette.types import Receive, Scope, Send


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan_loop(receive, send)
        return
    more_body = True
    while more_body:
        message = await receive()
        more_body = message.get("more_body", False)
    await answer(send, 202, b'{"id":"' + str(uuid.uuid4()).encode() + b'"}')


async def answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _nothing() -> None:
    return None


async def lifespan_loop(
    receive: Receive,
    send: Send,
    startup: Callable[[], Awaitable[None]] = _nothing,
    shutdown: Callable[[], Awaitable[None]] = _nothing,
) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await startup()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


def serve(app: str) -> None:
    """Run the ASGI app at import path `app` the way `leadline serve` runs intake."""
    import uvicorn

    from leadline.commands.serve import intake_server_options

    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    uvicorn.run(app, **intake_server_options(args.host, args.port, args.workers))


def main() -> None:
    serve("bench.bare_asgi:app")


if __name__ == "__main__":
    main()
