"""`leadline up`'s ports and public URL, decided before anything starts."""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import typer

from leadline import ports
from leadline.commands import up
from leadline.commands.up import choose_ports, public_url_environment, wait_until_healthy
from leadline.ports import free_port, port_is_free
from leadline.settings import Settings

pytestmark = pytest.mark.unit


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_listening_port_is_not_free(busy_port: int) -> None:
    assert not port_is_free(busy_port)


def test_a_port_on_the_wildcard_address_is_not_free_on_loopback() -> None:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        assert not port_is_free(int(sock.getsockname()[1]))


def test_a_closed_port_is_free_again() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = int(sock.getsockname()[1])
    assert port_is_free(port)


def test_a_picked_port_is_free_and_below_the_ephemeral_range() -> None:
    # Outgoing connections get ports of the ephemeral range: one picked there could be taken
    # by any client before the server binds it.
    for _ in range(20):
        port = free_port()
        assert ports.FIRST_PICKED_PORT <= port < ports.ephemeral_start()
        assert port_is_free(port)


def test_a_bound_port_is_never_picked(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as listening, socket.socket() as bound:
        listening.bind(("127.0.0.1", free_port()))
        listening.listen()
        bound.bind(("127.0.0.1", free_port()))  # bound, not listening: still taken
        taken = [int(listening.getsockname()[1]), int(bound.getsockname()[1])]
        later = free_port()
        picks = iter([*taken, later])
        monkeypatch.setattr(random, "randint", lambda low, high: next(picks))
        assert free_port() == later


def test_without_the_kernels_range_linuxs_default_is_assumed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(ports, "EPHEMERAL_RANGE", tmp_path / "missing")
    assert ports.ephemeral_start() == 32_768


def test_explicit_free_ports_are_kept() -> None:
    intake, sandbox = free_port(), free_port()
    assert choose_ports(intake, sandbox, demo=False) == (intake, sandbox)


def test_the_demo_and_port_zero_pick_two_free_ports() -> None:
    for chosen in (choose_ports(None, None, demo=True), choose_ports(0, 0, demo=False)):
        intake, sandbox = chosen
        assert 0 not in chosen and intake != sandbox
        assert port_is_free(intake) and port_is_free(sandbox)


@pytest.mark.parametrize(
    ("which", "setting"),
    [
        ("intake", "make run PORT=... or leadline up --port ..."),
        ("sandbox", "make run SANDBOX_PORT=... or leadline up --sandbox-port ..."),
    ],
)
def test_a_busy_port_is_one_line_naming_the_setting(
    busy_port: int, which: str, setting: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ports = (busy_port, 0) if which == "intake" else (0, busy_port)
    with pytest.raises(typer.Exit) as exited:
        choose_ports(*ports, demo=False)
    assert exited.value.exit_code == 1
    assert capsys.readouterr().err == (
        f"error: port {busy_port} is in use (choose another with {setting})\n"
    )


def test_the_intake_and_the_sandbox_cannot_share_a_port(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    with pytest.raises(typer.Exit):
        choose_ports(port, port, demo=False)
    assert f"cannot share port {port}" in capsys.readouterr().err


def test_the_public_url_follows_the_port_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEADLINE_PUBLIC_URL", raising=False)
    url = "http://127.0.0.1:8300"
    assert public_url_environment(Settings(), url) == {"LEADLINE_PUBLIC_URL": url}
    assert public_url_environment(Settings(leadline_public_url="https://leads.example"), url) == {}
    monkeypatch.setenv("LEADLINE_PUBLIC_URL", "http://127.0.0.1:8000")
    assert public_url_environment(Settings(), url) == {}


class Child:
    def __init__(self, code: int | None) -> None:
        self.code = code

    def poll(self) -> int | None:
        return self.code


class AlwaysHealthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_another_program_answering_on_the_port_is_not_our_stack(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), AlwaysHealthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/healthz"
    children = {"sandbox": Child(None), "intake": Child(1)}
    try:
        with pytest.raises(typer.Exit) as exited:
            wait_until_healthy(url, children, threading.Event(), timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert exited.value.exit_code == 1
    assert capsys.readouterr().err == (
        "error: intake exited during start-up with code 1 (its log lines are above)\n"
    )


def test_up_starts_the_scheduler_with_the_other_children(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[list[str]] = []
    monkeypatch.setattr(up.subprocess, "Popen", lambda cmd, env: started.append(cmd) or cmd)

    children = up.start_children({}, port=8100, sandbox_port=8125)

    assert sorted(children) == ["intake", "sandbox", "scheduler", "worker"]
    assert [cmd[3:] for cmd in started] == [
        ["sandbox", "--port", "8125"],
        ["intake", "--port", "8100"],
        ["worker"],
        ["scheduler"],
    ]
