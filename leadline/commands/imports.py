"""`leadline import ORG FILE.csv`: the same checks, storage and batches as POST /v1/imports,
with the workers' progress shown until the import is done."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from leadline.commands.common import BadInput, JsonOption, emit, ensure_org, parse_uuid, run_guarded
from leadline.commands.progress import Progress
from tasks.context import TaskContext, open_runtime

if TYPE_CHECKING:
    from tasks.imports.report import ImportReport

POLL_SECONDS = 0.5
BAR_WIDTH = 30


class ImportProgress(Progress):
    """The shared progress line with a bar: `rows processed: 300/1000 (30%) [#########-...]`."""

    def text(self, done: int, total: int | None) -> str:
        line = super().text(done, total)
        if not total:
            return line
        filled = BAR_WIDTH * min(done, total) // total
        return f"{line} [{'#' * filled}{'-' * (BAR_WIDTH - filled)}]"


def import_leads(
    org: str,
    file: Path = typer.Argument(..., help="The CSV: UTF-8 (with or without BOM) or UTF-16."),
    maps: list[str] = typer.Option(
        [], "--map", help="COLUMN=FIELD: read a column as a lead field (COLUMN= leaves it out)."
    ),
    errors: Path | None = typer.Option(
        None, "--errors", help="Write the rejected rows' error CSV here when done (mode 0600)."
    ),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait for the workers to finish."),
    as_json: bool = JsonOption,
) -> None:
    """Import ORG's leads from FILE.csv (fields: name, phone, email, message, source,
    consent_sms, consent_text, consent_at, consent_source); workers write it in batches."""
    from tasks.imports.batches import start_import
    from tasks.imports.scan import MAX_FILE_BYTES, ImportRefused, parse_mapping, scan_file

    org_id = parse_uuid(org, "ORG")
    if not file.is_file():
        raise BadInput(f"FILE: no file {file} (give the path of a CSV file)")
    if errors is not None and not errors.resolve().parent.is_dir():
        raise BadInput(f"--errors: no directory {errors.resolve().parent} (create it first)")

    def run() -> None:
        mapping = parse_mapping(maps)
        if file.stat().st_size > MAX_FILE_BYTES:
            raise ImportRefused(413, "the file is over 10 MB")
        new = scan_file(file.read_bytes(), mapping, "cli")
        context = open_runtime()
        ensure_org(context, org_id)
        stored = start_import(context, org_id, new)
        report = follow(context, org_id, stored.id, wait)
        if errors is not None and report["status"] == "done":
            write_private(errors, error_csv(context, org_id, stored.id))
        emit(
            {**report, "org_id": org, "new": stored.created},
            as_json,
            summary(report, stored.created),
        )

    run_guarded(run, as_json)


def follow(
    context: TaskContext, org_id: uuid.UUID, import_id: uuid.UUID, wait: bool
) -> ImportReport:
    """The import's report, once done when `wait` (the workers' progress on stderr)."""
    from tasks.imports.report import read_report

    report = read_report(context, org_id, import_id)
    if not wait:
        return report
    on_progress = ImportProgress("rows processed")
    try:
        while True:
            on_progress(report["imported"] + report["updated"] + report["rejected"], report["rows"])
            if report["status"] == "done":
                return report
            time.sleep(POLL_SECONDS)
            report = read_report(context, org_id, import_id)
    finally:
        on_progress.close()


def error_csv(context: TaskContext, org_id: uuid.UUID, import_id: uuid.UUID) -> bytes:
    from tasks.imports.report import read_errors_csv

    return read_errors_csv(context, org_id, import_id)


def write_private(path: Path, content: bytes) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    with os.fdopen(os.open(path, flags, 0o600), "wb") as sink:
        sink.write(content)


def summary(report: ImportReport, new: bool) -> str:
    again = "" if new else " (this file was imported before; nothing new written)"
    return (
        f"import {report['id']} {report['status']}: {report['rows']} rows, "
        f"{report['imported']} imported, {report['updated']} updated, "
        f"{report['rejected']} rejected{again}"
    )
