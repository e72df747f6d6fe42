"""A body that does not arrive in time is answered 408 and the connection closed, so a slow
client cannot hold a server slot. A raw socket sends the headers, then dribbles the body."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest
import uvicorn

from leadline.commands.serve import intake_server_options
from tests.helpers import wait_for

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration

TIMEOUT = 0.5


@pytest.fixture
def intake_port(context: TaskContext) -> Iterator[int]:
    """The intake app under uvicorn (with the intake's own server options), on loopback."""
    from intake.app import create_app

    settings = context.settings.model_copy(update={"leadline_body_timeout_seconds": TIMEOUT})
    app = create_app(replace(context, settings=settings))
    options = intake_server_options("127.0.0.1", 0, 1)
    del options["workers"]
    server = uvicorn.Server(uvicorn.Config(app, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started)
    yield int(server.servers[0].sockets[0].getsockname()[1])
    server.should_exit = True
    thread.join(timeout=10)


def read_response(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := conn.recv(4096):
        received += chunk
    return received


def headers_for(length: int) -> bytes:
    return (
        b"POST /v1/leads HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer ll_00000000_whatever\r\n"
        b"Content-Type: application/json\r\n" + f"Content-Length: {length}\r\n\r\n".encode()
    )


def test_a_body_dribbled_past_the_timeout_is_408_and_the_connection_closed(
    intake_port: int,
) -> None:
    with socket.create_connection(("127.0.0.1", intake_port), timeout=10) as conn:
        conn.sendall(headers_for(1000))
        # One byte every fifth of the timeout: each part is prompt, the whole is not.
        try:
            for _ in range(20):
                conn.sendall(b" ")
                time.sleep(TIMEOUT / 5)
        except OSError:
            pass  # the server answered and closed while we were still sending
        response = read_response(conn)
    status_line = response.split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 408 Request Timeout"
    assert b'{"error":"request_timeout","message":"request body timed out"' in response


def test_a_body_that_stops_arriving_is_408(intake_port: int) -> None:
    with socket.create_connection(("127.0.0.1", intake_port), timeout=10) as conn:
        conn.sendall(headers_for(100) + b'{"email": ')
        response = read_response(conn)
    assert response.startswith(b"HTTP/1.1 408 ")


def test_a_prompt_body_is_not_affected(intake_port: int) -> None:
    body = b'{"email": "a@example.com"}'
    with socket.create_connection(("127.0.0.1", intake_port), timeout=10) as conn:
        conn.sendall(headers_for(len(body)) + body)
        status_line = conn.recv(4096).split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 401 Unauthorized"  # read whole, then the key was checked
