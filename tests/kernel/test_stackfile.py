"""`leadline simulate` finds the running stack from stack.json, tolerantly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from leadline.stackfile import STACK_FILE, Stack, read_stack, remove_stack_file, write_stack_file

pytestmark = pytest.mark.unit


def write(state_dir: Path, data: object) -> None:
    (state_dir / STACK_FILE).write_text(json.dumps(data))


def dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stdout)


def test_the_recorded_stack_of_a_live_process(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "intake_url": "http://127.0.0.1:8300/",
            "sandbox_url": "http://127.0.0.1:8325",
            "pid": os.getpid(),
        },
    )
    assert read_stack(tmp_path) == Stack("http://127.0.0.1:8300", "http://127.0.0.1:8325")


def test_extra_or_missing_optional_keys_are_tolerated(tmp_path: Path) -> None:
    write(tmp_path, {"intake_url": "http://127.0.0.1:8300", "started_at": "now"})
    assert read_stack(tmp_path) == Stack("http://127.0.0.1:8300", None)


def test_no_file_a_damaged_file_or_a_stopped_stack_is_no_stack(tmp_path: Path) -> None:
    assert read_stack(tmp_path) is None
    (tmp_path / STACK_FILE).write_text("{not json")
    assert read_stack(tmp_path) is None
    write(tmp_path, ["http://127.0.0.1:8300"])
    assert read_stack(tmp_path) is None
    write(tmp_path, {"sandbox_url": "http://127.0.0.1:8325"})
    assert read_stack(tmp_path) is None
    write(tmp_path, {"intake_url": "http://127.0.0.1:8300", "pid": dead_pid()})
    assert read_stack(tmp_path) is None


def test_up_records_the_stack_and_removes_only_its_own_record(tmp_path: Path) -> None:
    write_stack_file(tmp_path, "http://127.0.0.1:8300", "http://127.0.0.1:8325")
    assert read_stack(tmp_path) == Stack("http://127.0.0.1:8300", "http://127.0.0.1:8325")
    remove_stack_file(tmp_path)
    assert read_stack(tmp_path) is None

    write(tmp_path, {"intake_url": "http://127.0.0.1:8400", "pid": os.getppid()})
    remove_stack_file(tmp_path)  # another stack's record stays
    assert read_stack(tmp_path) == Stack("http://127.0.0.1:8400", None)
