"""Progress of long commands, on stderr only (stdout keeps just the result, so `--json` output
stays parseable): a count updated in place on a terminal, plain lines when stderr is piped.

Work functions take an optional `on_progress(done, total)` callback (total None when not
known); the command passes the one `progress()` yields.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from leadline.progress import ProgressCallback

TTY_REFRESH_SECONDS = 0.1
PLAIN_EVERY_SECONDS = 5.0


class Progress:
    """Throttled progress output: one line rewritten (`\\r`) on a TTY, else periodic lines.

    Piped, the first report, the last one (done == total) and one every `every` seconds in
    between are printed, so a log shows the work started, moved and finished."""

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        every: float = PLAIN_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = TTY_REFRESH_SECONDS if self.tty else every
        self.clock = clock
        self.last_print: float | None = None
        self.last_text = ""
        self.state: tuple[int, int | None] | None = None

    def __call__(self, done: int, total: int | None) -> None:
        first = self.state is None
        self.state = (done, total)
        now = self.clock()
        finished = total is not None and done >= total
        due = self.last_print is None or now - self.last_print >= self.every
        if first or finished or due:
            self._write(self.text(done, total))
            self.last_print = now

    def text(self, done: int, total: int | None) -> str:
        if total is None:
            return f"{self.label}: {done}"
        percent = 100 * done // total if total else 100
        return f"{self.label}: {done}/{total} ({percent}%)"

    def _write(self, text: str) -> None:
        if text == self.last_text:
            return
        self.last_text = text
        if self.tty:
            self.stream.write("\r\x1b[2K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Print the final count if it was not shown yet; end the terminal line."""
        if self.state is not None:
            self._write(self.text(*self.state))
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()


@contextmanager
def progress(label: str, stream: TextIO | None = None) -> Iterator[ProgressCallback]:
    """`with progress("export") as on_progress: work(..., on_progress=on_progress)`."""
    reporter = Progress(label, stream)
    try:
        yield reporter
    finally:
        reporter.close()
