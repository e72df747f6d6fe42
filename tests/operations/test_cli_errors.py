"""Every documented command, given a bad argument, fails the one way: one line on stderr that
starts `error: `, no traceback, exit code 1. Usage errors are one line too, with exit code 2.

The commands are found by walking the CLI's own command tree, so a new command is covered
without editing this file (or, when it takes no value at all, must be listed here on purpose),
and the README's command table must name exactly the commands the tree has.
Runs in-process against the test database (one runtime shared by every invocation).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from leadline.cli import app
from tests.support.services import MakeOrg

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
BAD = "not-a-valid-value"
UNKNOWN_ID = "7c9e6679-7425-40de-944b-e07cc1f877bf"  # well formed, never created
# Commands whose required values are not all ours to reject, or that take none: the bad
# argument is given by hand. A new command with a required argument needs no entry here.
BAD_ARGUMENTS: dict[str, list[str]] = {
    "org create": ["x" * 201],
    "telegram link": [BAD, "5"],
    "backup create": [BAD],
    "backup restore": [BAD],
    "backup list": [BAD],
    "alerts unknown": [BAD],
    "alerts resolve": [UNKNOWN_ID, "--as", "maybe"],
    "number add": [UNKNOWN_ID, "555"],
    "number remove": [UNKNOWN_ID, "call me"],
    "alerts add-number": [UNKNOWN_ID, "12"],
    "optout add": [UNKNOWN_ID, "call me", "--channel", "email"],
    "dlq list": ["--since", "yesterday-ish"],
    "dlq replay": [],
    "dlq purge": ["--older-than", "1x"],
    "audit list": ["--since", "15q"],
    "webhook recover": [UNKNOWN_ID, "--since", "last week"],
}
# Commands with no value of ours to get wrong (roles and plain listings): usage errors only.
NO_VALUES = {
    "up",
    "migrate",
    "intake",
    "worker",
    "sandbox",
    "status",
    "scheduler",
    "schedule list",
    "keys rotate-master",
    "org list",
}


def command_tree() -> dict[str, Any]:
    """'group sub' -> click command, for every leaf command of `leadline`."""
    found: dict[str, Any] = {}

    def walk(command: Any, path: list[str]) -> None:
        children = getattr(command, "commands", None)
        if children:
            for name, child in children.items():
                walk(child, [*path, name])
        else:
            found[" ".join(path)] = command

    walk(get_command(app), [])
    return found


def readme_commands() -> set[str]:
    """The commands named in the README's table (`endpoint disable/enable ID` is two)."""
    text = README.read_text()
    table = text[text.index("| group | commands |") : text.index("## Dependencies")]
    groups = {path.split()[0] for path in command_tree() if " " in path}
    named: set[str] = set()
    for cell in re.findall(r"`([^`]+)`", table):
        words = cell.split()
        if words[0] in groups:
            named.update(f"{words[0]} {sub}" for sub in words[1].split("/"))
        else:
            named.add(words[0])
    return named


def bad_arguments(path: str, command: Any) -> list[str]:
    if path in BAD_ARGUMENTS:
        return BAD_ARGUMENTS[path]
    values: list[str] = []
    for param in command.params:
        if not param.required:
            continue
        if param.param_type_name == "argument":
            values.append(BAD)
        else:
            values += [param.opts[0], BAD]
    assert values, f"`leadline {path}` takes no required value: add it to BAD_ARGUMENTS"
    return values


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def assert_one_error_line(result: Any, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return str(lines[0])


def test_readme_documents_exactly_the_commands_the_cli_has() -> None:
    assert readme_commands() == set(command_tree())


def test_every_command_with_a_value_is_covered() -> None:
    tree = set(command_tree())
    assert set(BAD_ARGUMENTS) | NO_VALUES <= tree, "stale entries"
    assert tree - NO_VALUES, "the walk found no commands"


@pytest.mark.parametrize("path", sorted(set(command_tree()) - NO_VALUES))
def test_bad_argument_is_one_error_line_and_exit_1(path: str, context: TaskContext) -> None:
    args = [*path.split(), *bad_arguments(path, command_tree()[path])]
    line = assert_one_error_line(invoke(*args), 1)
    assert line.startswith("error: ") and line.endswith(")"), line  # error: what (how to fix)

    as_json = assert_one_error_line(invoke(*args, "--json"), 1)
    assert set(json.loads(as_json)) == {"error"}


@pytest.mark.parametrize("path", sorted(set(command_tree()) - NO_VALUES - {"org create"}))
def test_unknown_id_is_one_error_line_and_exit_1(path: str, context: TaskContext) -> None:
    """The same with well-formed ids that name nothing: refused before anything changes."""
    values = [UNKNOWN_ID if v == BAD else v for v in bad_arguments(path, command_tree()[path])]
    line = assert_one_error_line(invoke(*path.split(), *values), 1)
    assert line.startswith("error: ") and line.endswith(")"), line


@pytest.mark.parametrize("path", sorted(command_tree()))
def test_usage_error_is_one_line_and_exit_2(path: str) -> None:
    line = assert_one_error_line(invoke(*path.split(), "--no-such-option"), 2)
    assert line.startswith("error: No such option"), line
    assert f"`leadline {path} --help`" in line


def test_unknown_command_and_missing_argument_are_usage_errors() -> None:
    line = assert_one_error_line(invoke("org", "frobnicate"), 2)
    assert line == "error: No such command 'frobnicate' (see `leadline org --help`)"
    line = assert_one_error_line(invoke("number", "add"), 2)
    assert line.startswith("error: Missing argument")
    line = assert_one_error_line(invoke("number", "add", "--json"), 2)
    assert json.loads(line)["error"].startswith("Missing argument")


def test_debug_shows_the_traceback_of_an_unexpected_failure(
    context: TaskContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    import models.orgs

    def broken(_session: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(models.orgs, "list_organizations", broken)
    line = assert_one_error_line(invoke("org", "list"), 1)
    assert line == "error: unexpected RuntimeError (run `leadline --debug ...` for the traceback)"
    with pytest.raises(RuntimeError, match="boom"):
        invoke("--debug", "org", "list")


def test_times_accept_durations_and_iso(context: TaskContext, make_org: MakeOrg) -> None:
    for since in ("30s", "15m", "1h", "7d", "2025-01-31T12:00:00Z", "2025-01-31"):
        result = invoke("audit", "list", "--since", since, "--limit", "1", "--json")
        assert result.exit_code == 0, result.stderr
        assert isinstance(json.loads(result.stdout), list)


def test_export_to_a_missing_directory_fails_before_the_work(
    context: TaskContext, make_org: MakeOrg, tmp_path: Path
) -> None:
    out = tmp_path / "missing-directory" / "export.json"
    line = assert_one_error_line(invoke("export", str(make_org().id), "--out", str(out)), 1)
    assert line == f"error: --out: no directory {out.parent} (create it, or pick another)"


def test_a_file_that_cannot_be_written_is_one_line(
    context: TaskContext, make_org: MakeOrg, tmp_path: Path
) -> None:
    out = tmp_path / "a-directory"
    out.mkdir()
    result = invoke("export", str(make_org().id), "--out", str(out))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"error: Is a directory: {out} (check the path and its permissions)"
    )
