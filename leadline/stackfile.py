"""Where the running development stack listens: `<state dir>/stack.json`, written by `leadline
up` once its intake answers and removed when it stops, read by `leadline simulate`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

STACK_FILE = "stack.json"


@dataclass(frozen=True)
class Stack:
    intake_url: str
    sandbox_url: str | None


def write_stack_file(state_dir: Path, intake_url: str, sandbox_url: str) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    record = {"intake_url": intake_url, "sandbox_url": sandbox_url, "pid": os.getpid()}
    partial = state_dir / f"{STACK_FILE}.partial"
    partial.write_text(json.dumps(record), encoding="utf-8")
    partial.replace(state_dir / STACK_FILE)


def remove_stack_file(state_dir: Path) -> None:
    """Only our own record: another stack may have taken the directory over since."""
    path = state_dir / STACK_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(data, dict) and data.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def read_stack(state_dir: Path) -> Stack | None:
    """The stack `leadline up` recorded (keys intake_url, sandbox_url, pid), or None when
    there is none, the file is unreadable, or its process is gone."""
    try:
        data = json.loads((state_dir / STACK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("intake_url"), str):
        return None
    pid = data.get("pid")
    if isinstance(pid, int) and not isinstance(pid, bool) and not process_alive(pid):
        return None
    sandbox = data.get("sandbox_url")
    return Stack(data["intake_url"].rstrip("/"), sandbox if isinstance(sandbox, str) else None)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    return True
