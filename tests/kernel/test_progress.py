"""Progress output: rewritten in place on a terminal, throttled plain lines when piped."""

from __future__ import annotations

import io

import pytest

from leadline.commands.progress import Progress, progress

pytestmark = pytest.mark.unit


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_piped_prints_first_last_and_one_line_per_interval() -> None:
    stream, clock = io.StringIO(), FakeClock()
    report = Progress("rows", stream, every=5.0, clock=clock)
    for done in range(101):
        clock.now = done * 0.1  # 10 s of work
        report(done, 100)
    report.close()
    assert stream.getvalue().splitlines() == [
        "rows: 0/100 (0%)",
        "rows: 50/100 (50%)",
        "rows: 100/100 (100%)",
    ]


def test_unknown_total_prints_counts_and_the_final_one() -> None:
    stream, clock = io.StringIO(), FakeClock()
    report = Progress("read", stream, every=5.0, clock=clock)
    for done in range(1, 8):
        report(done, None)
    report.close()
    assert stream.getvalue().splitlines() == ["read: 1", "read: 7"]


def test_terminal_rewrites_one_line_and_ends_it() -> None:
    stream = Terminal()
    with progress("rows", stream) as on_progress:
        on_progress(0, 2)
        on_progress(2, 2)
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("rows: 2/2 (100%)\n")
    assert "\rrows: 0/2" in text.replace("\x1b[2K", "")


def test_nothing_reported_prints_nothing() -> None:
    stream = Terminal()
    with progress("rows", stream):
        pass
    assert stream.getvalue() == ""
