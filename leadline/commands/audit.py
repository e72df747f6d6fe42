"""`leadline audit list`: who did what, when (ids and codes only, never PII)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

import typer

from leadline.commands.common import JsonOption, emit, parse_uuid, run_guarded
from leadline.commands.tables import format_table
from leadline.timespec import parse_moment
from tasks.context import open_runtime

if TYPE_CHECKING:
    from models.tables import AuditEntry

audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)


@audit_app.command("list")
def audit_list(
    org: str | None = typer.Option(None, help="Only entries of this organisation."),
    action: str | None = typer.Option(None, help="Only this action; `dlq.*` for a prefix."),
    since: str | None = typer.Option(None, help="Since: 30m, 2h, 7d or an ISO time."),
    limit: int = typer.Option(200, min=1, max=10_000),
    as_json: bool = JsonOption,
) -> None:
    """Audit entries, newest first."""
    from models.audit import AuditQuery, list_audit

    org_id = parse_uuid(org, "ORG") if org else None

    def run() -> None:
        context = open_runtime()
        since_at = parse_moment(since, context.clock(), "--since") if since else None
        query = AuditQuery(org_id=org_id, action=action, since=since_at, limit=limit)
        with context.db.maintenance() as session:
            entries = [audit_dict(entry) for entry in list_audit(session, query)]
        emit(entries, as_json, audit_text(entries))

    run_guarded(run, as_json)


class AuditRow(TypedDict):
    id: str
    created_at: str
    actor: str
    action: str
    org_id: str | None
    target: str | None
    details: dict[str, object]


def audit_dict(entry: AuditEntry) -> AuditRow:
    return {
        "id": str(entry.id),
        "created_at": entry.created_at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "org_id": str(entry.org_id) if entry.org_id else None,
        "target": entry.target,
        "details": entry.details,
    }


def audit_text(entries: list[AuditRow]) -> str:
    if not entries:
        return "no audit entries"
    headers = ("time", "actor", "action", "org", "target", "details")
    rows = [
        (e["created_at"][:19], e["actor"], e["action"], e["org_id"], e["target"], e["details"])
        for e in entries
    ]
    return format_table(headers, rows)
