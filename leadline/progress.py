"""The progress callback long operations accept: `on_progress(done, total)`, total None when
not known ahead. The CLI renders it (leadline/commands/progress.py); library code only calls it."""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[int, int | None], None]
