"""The quick start is one list: the README shows it for the default ports, `leadline up`
prints it for the ports in use, and tests/e2e/test_quick_start.py runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadline.commands.quickstart import quick_start_steps
from leadline.commands.up import print_welcome

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_shows_the_quick_start_for_the_default_ports() -> None:
    steps = quick_start_steps("http://127.0.0.1:8000", "http://127.0.0.1:8025")
    block = "```sh\n" + "\n".join(step.command for step in steps) + "\n```"
    assert block in README.read_text()


def test_the_welcome_prints_the_ports_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    print_welcome("http://127.0.0.1:8300", "http://127.0.0.1:8325")
    printed = capsys.readouterr().err
    for step in quick_start_steps("http://127.0.0.1:8300", "http://127.0.0.1:8325"):
        assert f"  {step.command}\n" in printed
    assert "INTAKE=http://127.0.0.1:8300 SANDBOX=http://127.0.0.1:8325" in printed
    assert ":8000" not in printed and ":8025" not in printed
    assert "<" not in printed  # no <placeholder> left to fill in
