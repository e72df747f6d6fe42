"""Which inbound texts opt out, opt in, ask for help, or are just a conversation."""

from __future__ import annotations

import pytest

from tasks.optouts import Intent, classify

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "body",
    [
        "stop",
        "STOP.",
        " Stop ",
        "Stop!!!",
        "STOPALL",
        "unsubscribe",
        "Cancel",
        "end",
        "QUIT",
        "revoke",
        "optout",
        "OPT OUT",
        "opt-out",
        "please stop texting me",
        "Stop texting me please",
        "do not text me again",
        "Don't contact me",
        "remove me from your list",
        "take me off this list",
        "no more texts",
        "wrong number",
        "leave me alone",
        "STOP sending me these",
    ],
)
def test_opt_out(body: str) -> None:
    assert classify(body) is Intent.OPT_OUT


@pytest.mark.parametrize("body", ["START", "yes", " Unstop. "])
def test_opt_in(body: str) -> None:
    assert classify(body) is Intent.OPT_IN


@pytest.mark.parametrize("body", ["HELP", "help?", "Info"])
def test_help(body: str) -> None:
    assert classify(body) is Intent.HELP


@pytest.mark.parametrize(
    "body",
    [
        "Can you stop by on Tuesday?",
        "Stop by anytime after 3",
        "Yes please, Tuesday works",
        "I need help with my roof",
        "What info do you need?",
        "The leak won't end",
        "",
    ],
)
def test_conversation(body: str) -> None:
    assert classify(body) is Intent.MESSAGE
