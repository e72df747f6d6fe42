"""`leadline backup ...`, `leadline lead erase`, `leadline export`, `leadline org delete`."""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import typer

from leadline.commands.common import (
    BadInput,
    JsonOption,
    emit,
    ensure_org,
    fail,
    parse_uuid,
    run_guarded,
)
from leadline.commands.progress import progress
from tasks.context import open_runtime

backup_app = typer.Typer(help="Encrypted per-organisation backups.", no_args_is_help=True)
lead_app = typer.Typer(help="Leads: erasure requests.", no_args_is_help=True)


@backup_app.command("create")
def backup_create(
    org: str = typer.Argument("", help="Organisation id (default: every organisation)."),
    as_json: bool = JsonOption,
) -> None:
    """Write an encrypted bundle now for ORG, or for every organisation."""
    from tasks.backups import create_backup, create_backups

    org_id = parse_uuid(org, "ORG") if org else None

    def run() -> None:
        context = open_runtime()
        now = context.clock()
        if org_id is None:
            with progress("organisations backed up") as on_progress:
                summary = create_backups(context, now, on_progress=on_progress)
            emit(summary, as_json, f"created {summary['created']} backups")
            return
        ensure_org(context, org_id)
        with progress("rows written") as on_progress:
            backup = create_backup(context, org_id, now, on_progress=on_progress)
        location = context.backups.location(backup.path)
        data = {
            "id": str(backup.id),
            "org_id": org,
            "path": backup.path,
            "location": location,
            "rows": backup.row_count,
        }
        emit(data, as_json, f"backup {backup.id} ({backup.row_count} rows) at {location}")

    run_guarded(run, as_json)


@backup_app.command("list")
def backup_list(
    org: str = typer.Argument("", help="Organisation id (default: all)."),
    as_json: bool = JsonOption,
) -> None:
    """Backups, newest first."""
    from tasks.backups import list_backups

    org_id = parse_uuid(org, "ORG") if org else None

    def run() -> None:
        context = open_runtime()
        if org_id is not None:
            ensure_org(context, org_id)
        backups = list_backups(context, org_id)
        rows = [
            {
                "id": str(b.id),
                "org_id": str(b.org_id),
                "status": b.status,
                "created_at": b.created_at.isoformat(),
                "expires_at": b.expires_at.isoformat(),
                "rows": b.row_count,
                "bytes": b.size_bytes,
                "sha256": b.sha256,
                "key_version": b.key_version,
            }
            for b in backups
        ]
        text = "\n".join(
            f"{r['id']}  org {r['org_id']}  {r['status']:<9} {r['created_at']}  {r['rows']} rows"
            for r in rows
        )
        emit(rows, as_json, text or "no backups")

    run_guarded(run, as_json)


@backup_app.command("restore")
def backup_restore(
    backup_id: str = typer.Argument("", help="Backup id to restore into its live organisation."),
    source: str | None = typer.Option(
        None,
        "--from",
        metavar="DIR|URL",
        help="A backup store (a directory, file:///path or s3://bucket/prefix): restore every "
        "organisation in it into an empty database.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Re-insert BACKUP_ID's rows (idempotent), or with --from DIR|URL rebuild every
    organisation of that backup store after the database was lost; erased people stay erased."""
    from tasks.restore import describe, restore_backup, restore_from_store

    if bool(backup_id) == (source is not None):
        fail(
            "give either BACKUP_ID or --from DIR|URL (backup restore ID, or --from DIR)", as_json, 2
        )

    backup = parse_uuid(backup_id, "BACKUP_ID") if source is None else None

    def run() -> None:
        context = open_runtime()
        if source is not None:
            with progress("organisations restored") as on_progress:
                store_summary = restore_from_store(
                    context, source, context.clock(), on_progress=on_progress
                )
            emit(store_summary, as_json, describe(store_summary))
            return
        assert backup is not None
        with progress("tables restored") as on_progress:
            summary = restore_backup(context, backup, context.clock(), on_progress=on_progress)
        inserted = sum(summary["inserted"].values())
        emit(
            summary,
            as_json,
            f"restored {inserted} rows; {summary['erased_again']} erased leads kept erased",
        )

    run_guarded(run, as_json)


@lead_app.command("erase")
def lead_erase(
    org: str,
    lead_id: str,
    now: bool = typer.Option(False, "--now", help="Carry out the erasure immediately."),
    as_json: bool = JsonOption,
) -> None:
    """Request erasure of LEAD_ID (done by the hourly job, within the deadline)."""
    from tasks.erasure import erase_request, request_erasure

    org_id, lead = parse_uuid(org, "ORG"), parse_uuid(lead_id, "LEAD_ID")

    def run() -> None:
        context = open_runtime()
        at = context.clock()
        deadline = timedelta(hours=context.settings.leadline_erasure_deadline_hours)
        with context.db.tenant(org_id) as session:
            request = request_erasure(session, lead, at, deadline, actor="cli")
        done = erase_request(context, org_id, request.id, at) if now else False
        data = {"request_id": str(request.id), "due_at": request.due_at.isoformat(), "done": done}
        text = "erased" if done else f"erasure requested; due by {request.due_at.isoformat()}"
        emit(data, as_json, text)

    run_guarded(run, as_json)


def export(
    org: str,
    fmt: str = typer.Option("json", "--format", help="json, or csv (a zip of CSV files)."),
    out: Path = typer.Option(..., "--out", help="File to write."),
    as_json: bool = JsonOption,
) -> None:
    """Export ORG's leads and lead-linked records, decrypted (treat the file as sensitive)."""
    from tasks.export import export_org

    org_id = parse_uuid(org, "ORG")
    if fmt not in ("json", "csv"):
        raise BadInput(f"--format must be json or csv, not {fmt!r}")
    if not out.resolve().parent.is_dir():
        raise BadInput(f"--out: no directory {out.resolve().parent} (create it, or pick another)")

    def run() -> None:
        context = open_runtime()
        ensure_org(context, org_id)
        with progress("rows exported") as on_progress:
            result = export_org(
                context, org_id, "csv" if fmt == "csv" else "json", "cli", on_progress
            )
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        with os.fdopen(os.open(out, flags, 0o600), "wb") as sink:
            sink.write(result.content)
        emit(
            {"org_id": org, "format": fmt, "out": str(out), "rows": result.counts},
            as_json,
            f"exported {result.counts.get('leads', 0)} leads to {out}",
        )

    run_guarded(run, as_json)


def org_delete(
    org: str,
    now: bool = typer.Option(False, "--now", help="Delete immediately instead of next run."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask (required when not on a terminal)."),
    as_json: bool = JsonOption,
) -> None:
    """Request deletion of ORG: keys shredded, rows and backups deleted (hourly job).

    Asks for confirmation on a terminal; elsewhere `--yes` is required."""
    from models.orgs import get_organization
    from tasks.deletion import delete_organization, request_org_deletion

    org_id = parse_uuid(org, "ORG")

    def run() -> None:
        context = open_runtime()
        with context.db.maintenance() as session:
            name = get_organization(session, org_id).name
        confirm_deletion(org_id, name, yes)
        with context.db.maintenance() as session:
            due = request_org_deletion(session, org_id, context.clock(), actor="cli")
        summary = delete_organization(context, org_id) if now else None
        data = {"org_id": org, "due_at": due.isoformat(), "deleted": summary is not None}
        if summary:
            data.update(summary)
        text = "organisation deleted" if summary else f"deletion due at {due.isoformat()}"
        emit(data, as_json, text)

    run_guarded(run, as_json)


def is_interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def confirm_deletion(org_id: object, name: str, yes: bool) -> None:
    if yes:
        return
    if not is_interactive():
        raise BadInput("not on a terminal, so nothing can be confirmed (add --yes to delete)")
    typer.confirm(
        f"Delete organisation {name!r} ({org_id})? Its keys are shredded; this cannot be undone",
        abort=True,
        err=True,
    )
