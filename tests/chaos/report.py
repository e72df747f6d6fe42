"""The printed summary: phases, faults, requests, what the stack holds, the checks."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.chaos.checks import CheckResult
from tests.chaos.load import Answer

SHOWN_PER_CHECK = 10


@dataclass
class Phases:
    seconds: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = time.monotonic() - began

    def lines(self) -> list[str]:
        rows = [(name, f"{seconds:.1f}") for name, seconds in self.seconds.items()]
        rows.append(("total", f"{time.monotonic() - self.started:.1f}"))
        return table(("phase", "seconds"), rows)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return (
            "  "
            + first.ljust(widths[0])
            + "".join(
                "  " + cell.rjust(width) for cell, width in zip(rest, widths[1:], strict=True)
            )
        )

    return [line(header), *(line(row) for row in rows)]


def status_class(answer: Answer) -> str:
    if answer.status is None:
        return "no answer"
    return f"{answer.status // 100}xx"


STATUS_COLUMNS = ("2xx", "4xx", "5xx", "no answer")


def requests_lines(answers: Sequence[Answer], planned: int) -> list[str]:
    by_kind: dict[str, Counter[str]] = {}
    for answer in answers:
        name = f"{answer.step.kind} {answer.step.intent}"
        by_kind.setdefault(name, Counter())[status_class(answer)] += 1
    total: Counter[str] = Counter(status_class(answer) for answer in answers)
    rows = [
        (name, str(sum(counts.values())), *(str(counts[c]) for c in STATUS_COLUMNS))
        for name, counts in sorted(by_kind.items())
    ]
    rows.append(("total", str(len(answers)), *(str(total[c]) for c in STATUS_COLUMNS)))
    lines = table(("request", "sent", *STATUS_COLUMNS), rows)
    if len(answers) < planned:
        lines.append(f"  {planned - len(answers)} planned requests not sent before the deadline")
    return lines


def counts_line(name: str, counts: Mapping[str, int]) -> str:
    listed = ", ".join(f"{key} {value}" for key, value in sorted(counts.items()) if value)
    return f"  {name}: {listed or 'none'}"


def check_lines(results: Sequence[CheckResult]) -> list[str]:
    rows = [
        (
            f"{number} {result.name}",
            "ok" if result.ok else f"FAILED ({len(result.violations)})",
            "; ".join(f"{key} {value}" for key, value in result.notes.items()),
        )
        for number, result in enumerate(results, start=1)
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"  {row[0].ljust(widths[0])}  {row[1].ljust(widths[1])}  {row[2]}" for row in rows]
    for number, result in enumerate(results, start=1):
        for violation in result.violations[:SHOWN_PER_CHECK]:
            lines.append(f"  violation {number}: {violation}")
        hidden = len(result.violations) - SHOWN_PER_CHECK
        if hidden > 0:
            lines.append(f"  violation {number}: ... and {hidden} more")
    return lines
