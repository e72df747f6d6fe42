"""Lead CSV files for the import tests and the import benchmark: good rows with distinct
numbers and, spread through the file, bad rows of ten kinds, each kind with the reason the
error CSV must give for it."""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from typing import Any

HEADER = ["name", "phone", "email", "message", "consent_sms", "consent_at", "consent_text"]
GOOD_CONSENT_AT = "2024-05-01T10:00:00+00:00"
# kind -> (a row of that kind, the reason the error CSV gives). `{n}` makes each row distinct.
BAD_ROWS: dict[str, tuple[list[str], str]] = {
    "field_count": (["Short {n}", "+16505550100"], "expected 7 fields, found 2"),
    "no_contact": (["Nobody {n}", "", "", "hi", "false", "", ""], "phone or email is required"),
    "bad_phone": (
        ["Bad {n}", "+1000000{n}", "", "", "false", "", ""],
        "phone is not a valid phone number",
    ),
    "national_phone": (
        ["National {n}", "415555{n}", "", "", "false", "", ""],
        "phone must be in +E.164 form (the organisation has no default region)",
    ),
    "bad_email": (
        ["Mail {n}", "", "not-an-email-{n}", "", "false", "", ""],
        "email is not a valid address",
    ),
    "bad_time": (
        ["Time {n}", "", "time{n}@example.org", "", "true", "yesterday", ""],
        "consent_at is not an ISO 8601 date or time",
    ),
    "bad_consent": (
        ["Maybe {n}", "", "maybe{n}@example.org", "", "perhaps", "", ""],
        "consent_sms must be true or false",
    ),
    "control": (
        ["Bell\x07{n}", "", "bell{n}@example.org", "", "false", "", ""],
        "name contains control characters",
    ),
    "too_long": (
        ["x" * 201 + "{n}", "", "long{n}@example.org", "", "false", "", ""],
        "name is longer than 200 characters",
    ),
    "consent_untimed": (
        ["Untimed {n}", "", "untimed{n}@example.org", "", "true", "", "I agree"],
        "consent_sms is true but consent_at is empty",
    ),
}


@dataclass(frozen=True)
class LeadFile:
    content: bytes
    good: list[list[str]]  # the good rows, in file order
    bad: dict[int, tuple[str, list[str]]]  # line -> (reason, cells)


def phones(count: int, seed: int | None = None) -> list[str]:
    chooser = random.Random(seed)
    return [f"+1650{n:07d}" for n in chooser.sample(range(2_000_000, 10_000_000), count)]


def good_row(index: int, phone: str, tag: str) -> list[str]:
    """Short cells: 100,000 of these stay under the 10 MB cap (the benchmark's file)."""
    consent = index % 2 == 0
    return [
        f"Lead {index}",
        phone,
        f"l{index}.{tag}@example.org",
        f"Hi {index}",
        "true" if consent else "false",
        GOOD_CONSENT_AT if consent else "",
        "I agree" if consent else "",
    ]


def lead_file(good: int, bad_per_kind: int, seed: int | None = None) -> LeadFile:
    """`good` good rows and `bad_per_kind` bad rows of each kind, shuffled, as UTF-8 CSV."""
    chooser = random.Random(seed)
    tag = f"{chooser.randrange(16**8):08x}"
    good_rows = [good_row(i, p, tag) for i, p in enumerate(phones(good, seed))]
    bad_rows = [
        ([cell.replace("{n}", f"{n:04d}") for cell in cells], reason)
        for cells, reason in BAD_ROWS.values()
        for n in range(bad_per_kind)
    ]
    marked: list[tuple[list[str], str | None]] = [(row, None) for row in good_rows]
    marked += [(row, reason) for row, reason in bad_rows]
    chooser.shuffle(marked)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    bad: dict[int, tuple[str, list[str]]] = {}
    ordered_good: list[list[str]] = []
    for line, (row, reason) in enumerate(marked, start=2):
        writer.writerow(row)
        if reason is None:
            ordered_good.append(row)
        else:
            bad[line] = (reason, row)
    return LeadFile(buffer.getvalue().encode(), ordered_good, bad)


def upload(
    client: Any, auth: dict[str, str], content: bytes, *maps: str, kind: str = "text/csv"
) -> Any:
    """POST /v1/imports as a browser or curl sends it: multipart, the file part as `kind`."""
    files = {"file": ("leads.csv", content, kind)}
    data = {"map": list(maps)} if maps else None
    return client.post("/v1/imports", files=files, data=data, headers=auth)


def csv_bytes(rows: list[list[str]], header: list[str] = HEADER) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()
