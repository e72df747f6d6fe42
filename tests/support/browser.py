"""Which Chromium the browser tests drive, and what happens when there is none.

One place decides: run with the Chromium found on the PATH (or Debian's /usr/bin/chromium),
skip with the command that installs it, or, under CI, fail: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

DEBIAN_CHROMIUM = "/usr/bin/chromium"
ENABLE_COMMAND = "sudo apt-get install chromium"
TRUE_VALUES = frozenset({"1", "true", "yes"})


@dataclass(frozen=True)
class BrowserPlan:
    action: Literal["run", "skip", "fail"]
    executable: str | None = None
    reason: str = ""


def find_chromium(
    which: Callable[[str], str | None] = shutil.which,
    is_executable: Callable[[str], bool] = lambda path: os.access(path, os.X_OK),
) -> str | None:
    """The `chromium` on the PATH, else Debian's, else None."""
    found = which("chromium")
    if found:
        return found
    return DEBIAN_CHROMIUM if is_executable(DEBIAN_CHROMIUM) else None


def on_ci(env: Mapping[str, str]) -> bool:
    return env.get("CI", "").strip().lower() in TRUE_VALUES


def plan_browser(env: Mapping[str, str], chromium: str | None) -> BrowserPlan:
    if chromium is not None:
        return BrowserPlan("run", executable=chromium)
    if on_ci(env):
        return BrowserPlan(
            "fail",
            reason=f"CI=true but no chromium was found; the browser tests must run on CI "
            f"(`make test` installs it as root with apt-get, or run: {ENABLE_COMMAND})",
        )
    return BrowserPlan("skip", reason=f"no chromium found (enable with: {ENABLE_COMMAND})")
